#!/usr/bin/env bash
# Installs the servers that the fact-store tests start themselves (tests/fact_stores.rs):
#  * redis-server, from Debian's package;
#  * the Firestore emulator that gcloud ships (Java, which the machine has): the gcloud component
#    cloud-firestore-emulator, or the package google-cloud-cli-firestore-emulator when gcloud
#    itself came from a package (its component manager is then disabled).
# Idempotent: does nothing when both are there. Needs root for apt-get (CI and sessions are).
set -euo pipefail

log() { echo "install-test-services: $*" >&2; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  # --no-install-recommends: no redis-sentinel; policy-rc.d (where present) keeps the package's
  # own service from starting, and the tests start theirs on free ports anyway
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v redis-server >/dev/null; then
  log "installing redis-server (Debian)"
  apt_install redis-server
fi
redis-server --version >&2

firestore_emulator() {
  local root
  command -v gcloud >/dev/null || return 1
  root=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null) || return 1
  [ -x "$root/platform/cloud-firestore-emulator/cloud_firestore_emulator" ]
}

if ! firestore_emulator; then
  if ! command -v gcloud >/dev/null; then
    log "gcloud is missing: the Firestore (and Pub/Sub) emulator tests need the Google Cloud CLI"
    exit 1
  fi
  log "installing the Firestore emulator"
  gcloud components install cloud-firestore-emulator --quiet >&2 ||
    apt_install google-cloud-cli-firestore-emulator ||
    true
  if ! firestore_emulator; then
    log "could not install the Firestore emulator (neither 'gcloud components install cloud-firestore-emulator' nor the package google-cloud-cli-firestore-emulator worked)"
    exit 1
  fi
fi
if ! command -v java >/dev/null; then
  log "installing a Java runtime for the Firestore emulator"
  apt_install openjdk-17-jre-headless
fi
log "redis-server and the Firestore emulator are installed"
