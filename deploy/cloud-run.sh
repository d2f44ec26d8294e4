#!/usr/bin/env bash
# Deploys pipeline-run-metrics on Cloud Run behind a Pub/Sub push subscription, with least
# privilege (README, "Deployment"):
#  * two service accounts: the function's (BigQuery jobs in the data project, read access to the
#    datasets the handlers read only, metric writes, read access to Datastream's bucket, Firestore
#    when FACT_STORE=firestore) and the push subscription's (allowed to invoke this one service);
#  * the image in Artifact Registry (built by Cloud Build, or pushed beforehand: BUILD=none);
#  * the Cloud Run service, authenticated (--no-allow-unauthenticated) and verifying the push
#    token itself too (AUTH_MODE=verify, PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNTS);
#  * the topic, a dead-letter topic with a subscription that keeps what was given up on, and
#    the push subscription with OIDC, an ack deadline, retry backoff and dead-lettering, with
#    the IAM bindings Pub/Sub's service agent needs for it;
#  * optionally, the Cloud Storage notification of Datastream's bucket to the topic.
# Idempotent: what exists is kept (describe, else create), bindings are added (adding an existing
# binding changes nothing), the subscription is updated to these settings, and the service gets a
# new revision. `--dry-run` prints the commands instead of running them, and calls nothing.
#
# Usage: PROJECT=my-proj REGION=europe-west1 DATASETS=analytics,refined deploy/cloud-run.sh [--dry-run]
set -euo pipefail

# ---- settings (each may be set in the environment) ----------------------------------------
PROJECT=${PROJECT:-}                                  # required: runs the service, receives the metrics
REGION=${REGION:-europe-west1}
DATA_PROJECT=${DATA_PROJECT:-$PROJECT}                # BigQuery tables and query jobs
DATASETS=${DATASETS:-}                                # required: datasets (of DATA_PROJECT, or project.dataset) the handlers read
SERVICE=${SERVICE:-pipeline-run-metrics}
REPOSITORY=${REPOSITORY:-apps}                        # Artifact Registry (docker) repository
TAG=${TAG:-$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo latest)}
IMAGE=${IMAGE:-$REGION-docker.pkg.dev/$PROJECT/$REPOSITORY/$SERVICE:$TAG}
BUILD=${BUILD:-cloud-build}                           # cloud-build, or none (IMAGE already pushed)
FN_SA_NAME=${FN_SA_NAME:-metrics-fn}
PUSH_SA_NAME=${PUSH_SA_NAME:-pubsub-push}
TOPIC=${TOPIC:-pipeline-runs}
DEAD_LETTER_TOPIC=${DEAD_LETTER_TOPIC:-$TOPIC-dead-letter}
SUBSCRIPTION=${SUBSCRIPTION:-$SERVICE-push}
ACK_DEADLINE=${ACK_DEADLINE:-90}                      # seconds; above EVENT_DEADLINE_SECS (50)
MAX_DELIVERY_ATTEMPTS=${MAX_DELIVERY_ATTEMPTS:-10}    # then the message waits in the dead-letter topic
MIN_RETRY_DELAY=${MIN_RETRY_DELAY:-10s}
MAX_RETRY_DELAY=${MAX_RETRY_DELAY:-600s}
CONCURRENCY=${CONCURRENCY:-40}
DATASTREAM_BUCKET=${DATASTREAM_BUCKET:-}              # optional: the bucket Datastream writes to
DATASTREAM_PREFIX=${DATASTREAM_PREFIX:-}              # its files' prefix, e.g. ds/public_pipeline_run/
BUCKET_PROJECT=${BUCKET_PROJECT:-$PROJECT}            # the bucket's project (its service agent publishes)
FACT_STORE=${FACT_STORE:-memory}                      # memory, redis or firestore
FIRESTORE_PROJECT=${FIRESTORE_PROJECT:-$DATA_PROJECT}
PROJECT_NUMBER=${PROJECT_NUMBER:-}                    # looked up when unset

# ---- helpers --------------------------------------------------------------------------------
DRY_RUN=0

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() {
  echo "cloud-run.sh: $*" >&2
  exit 2
}

# Prints a command as one shell-quoted line.
show() {
  local line
  line=$(printf '%q ' "$@")
  echo "${line% }"
}

# Runs a command that changes something (dry run: prints it).
run() {
  if [ "$DRY_RUN" = 1 ]; then
    show "$@"
  else
    echo "+ $(show "$@")" >&2
    "$@"
  fi
}

# True when a describe command finds the resource (dry run: prints it and answers no, so that
# every create is printed).
exists() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "# unless it exists: $(show "$@")"
    return 1
  fi
  "$@" >/dev/null 2>&1
}

# The output of a read-only command (dry run: the placeholder given first).
lookup() {
  local placeholder=$1
  shift
  if [ "$DRY_RUN" = 1 ]; then
    echo "$placeholder"
  else
    "$@"
  fi
}

for arg in "$@"; do
  case $arg in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$arg' (--dry-run, --help)" ;;
  esac
done

[ -n "$PROJECT" ] || die "PROJECT is required (the project of the service and of the metrics)"
[ -n "$DATASETS" ] || die "DATASETS is required: the datasets the handlers read (read access is granted on those only)"
case $FACT_STORE in memory | redis | firestore) ;; *) die "FACT_STORE must be memory, redis or firestore" ;; esac
case $BUILD in cloud-build | none) ;; *) die "BUILD must be cloud-build or none" ;; esac

cd "$(dirname "$0")/.."

if [ -z "$PROJECT_NUMBER" ]; then
  PROJECT_NUMBER=$(lookup PROJECT_NUMBER gcloud projects describe "$PROJECT" --format='value(projectNumber)')
fi
FN_SA=$FN_SA_NAME@$PROJECT.iam.gserviceaccount.com
PUSH_SA=$PUSH_SA_NAME@$PROJECT.iam.gserviceaccount.com
PUBSUB_AGENT=service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com
# The service's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app), known before
# the first deployment: the push endpoint and the audience of the push tokens.
SERVICE_URL=https://$SERVICE-$PROJECT_NUMBER.$REGION.run.app
PUSH_AUDIENCE=${PUSH_AUDIENCE:-$SERVICE_URL/}

# ---- APIs -------------------------------------------------------------------------------------
run gcloud services enable --project="$PROJECT" run.googleapis.com artifactregistry.googleapis.com \
  cloudbuild.googleapis.com pubsub.googleapis.com monitoring.googleapis.com bigquery.googleapis.com

# ---- service accounts -------------------------------------------------------------------------
if ! exists gcloud iam service-accounts describe "$FN_SA" --project="$PROJECT"; then
  run gcloud iam service-accounts create "$FN_SA_NAME" --project="$PROJECT" \
    --display-name="pipeline-run-metrics (the function)"
fi
if ! exists gcloud iam service-accounts describe "$PUSH_SA" --project="$PROJECT"; then
  run gcloud iam service-accounts create "$PUSH_SA_NAME" --project="$PROJECT" \
    --display-name="pipeline-run-metrics push subscription (invoker only)"
fi

# The function's roles, each where it is needed and nowhere else.
run gcloud projects add-iam-policy-binding "$DATA_PROJECT" --member="serviceAccount:$FN_SA" \
  --role=roles/bigquery.jobUser --condition=None
IFS=, read -r -a datasets <<<"$DATASETS"
for dataset in "${datasets[@]}"; do
  dataset=${dataset// /}
  [ -n "$dataset" ] || continue
  case $dataset in *.*) qualified=$dataset ;; *) qualified=$DATA_PROJECT.$dataset ;; esac
  # dataset-level grant (BigQuery DCL); granting an existing role changes nothing
  run bq query --project_id="$DATA_PROJECT" --nouse_legacy_sql \
    "GRANT \`roles/bigquery.dataViewer\` ON SCHEMA \`${qualified%%.*}\`.${qualified#*.} TO \"serviceAccount:$FN_SA\""
done
run gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$FN_SA" \
  --role=roles/monitoring.metricWriter --condition=None
if [ "$FACT_STORE" = firestore ]; then
  run gcloud projects add-iam-policy-binding "$FIRESTORE_PROJECT" --member="serviceAccount:$FN_SA" \
    --role=roles/datastore.user --condition=None
fi
if [ -n "$DATASTREAM_BUCKET" ]; then
  run gcloud storage buckets add-iam-policy-binding "gs://$DATASTREAM_BUCKET" \
    --member="serviceAccount:$FN_SA" --role=roles/storage.objectViewer
fi

# ---- image ------------------------------------------------------------------------------------
if ! exists gcloud artifacts repositories describe "$REPOSITORY" --project="$PROJECT" --location="$REGION"; then
  run gcloud artifacts repositories create "$REPOSITORY" --project="$PROJECT" --location="$REGION" \
    --repository-format=docker
fi
if [ "$BUILD" = cloud-build ]; then
  run gcloud builds submit --project="$PROJECT" --region="$REGION" --tag="$IMAGE" .
else
  echo "# BUILD=none: $IMAGE must be pushed already (docker build -t $IMAGE . && docker push $IMAGE)"
fi

# ---- the service ------------------------------------------------------------------------------
allowed=
for dataset in "${datasets[@]}"; do
  dataset=${dataset// /}
  [ -n "$dataset" ] && allowed=${allowed:+$allowed,}$dataset
done
# ';' separates the variables (gcloud's ^;^ syntax): values may hold commas
env_vars="^;^METRICS_BACKEND=gcm;CLOUD_RUN_PROJECT_ID=$PROJECT;BIGQUERY_PROJECT_ID=$DATA_PROJECT"
env_vars+=";AUTH_MODE=verify;PUSH_AUDIENCE=$PUSH_AUDIENCE;PUSH_SERVICE_ACCOUNTS=$PUSH_SA"
env_vars+=";ALLOWED_DATASETS=$allowed;FACT_STORE=$FACT_STORE"
[ "$FACT_STORE" = firestore ] && env_vars+=";FIRESTORE_PROJECT=$FIRESTORE_PROJECT"
[ -n "$DATASTREAM_PREFIX" ] && env_vars+=";FILES_PREFIXES=$DATASTREAM_PREFIX"
run gcloud run deploy "$SERVICE" --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --service-account="$FN_SA" --no-allow-unauthenticated --ingress=all \
  --timeout="${ACK_DEADLINE}s" --concurrency="$CONCURRENCY" --set-env-vars="$env_vars"
# the push subscription's account may invoke this service, and nothing else
run gcloud run services add-iam-policy-binding "$SERVICE" --project="$PROJECT" --region="$REGION" \
  --member="serviceAccount:$PUSH_SA" --role=roles/run.invoker

# ---- Pub/Sub ----------------------------------------------------------------------------------
for topic in "$TOPIC" "$DEAD_LETTER_TOPIC"; do
  if ! exists gcloud pubsub topics describe "$topic" --project="$PROJECT"; then
    run gcloud pubsub topics create "$topic" --project="$PROJECT"
  fi
done
# what was given up on stays here (7 days) to be inspected and replayed
if ! exists gcloud pubsub subscriptions describe "$DEAD_LETTER_TOPIC-sub" --project="$PROJECT"; then
  run gcloud pubsub subscriptions create "$DEAD_LETTER_TOPIC-sub" --project="$PROJECT" \
    --topic="$DEAD_LETTER_TOPIC" --message-retention-duration=7d
fi
# Pub/Sub's service agent signs the push tokens as the push account (needed in projects made
# before April 2021), on that account only
run gcloud iam service-accounts add-iam-policy-binding "$PUSH_SA" --project="$PROJECT" \
  --member="serviceAccount:$PUBSUB_AGENT" --role=roles/iam.serviceAccountTokenCreator
push_settings=(
  --push-endpoint="$SERVICE_URL/"
  --push-auth-service-account="$PUSH_SA"
  --push-auth-token-audience="$PUSH_AUDIENCE"
  --ack-deadline="$ACK_DEADLINE"
  --min-retry-delay="$MIN_RETRY_DELAY"
  --max-retry-delay="$MAX_RETRY_DELAY"
  --dead-letter-topic="$DEAD_LETTER_TOPIC"
  --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
)
if exists gcloud pubsub subscriptions describe "$SUBSCRIPTION" --project="$PROJECT"; then
  run gcloud pubsub subscriptions update "$SUBSCRIPTION" --project="$PROJECT" "${push_settings[@]}"
else
  run gcloud pubsub subscriptions create "$SUBSCRIPTION" --project="$PROJECT" --topic="$TOPIC" \
    "${push_settings[@]}"
fi
# dead-lettering: the service agent publishes to the dead-letter topic and acknowledges on the
# subscription the messages it moves there
run gcloud pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --project="$PROJECT" \
  --member="serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.publisher
run gcloud pubsub subscriptions add-iam-policy-binding "$SUBSCRIPTION" --project="$PROJECT" \
  --member="serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.subscriber

# ---- Datastream's files -----------------------------------------------------------------------
if [ -n "$DATASTREAM_BUCKET" ]; then
  gcs_agent=$(lookup GCS_SERVICE_AGENT gcloud storage service-agent --project="$BUCKET_PROJECT")
  run gcloud pubsub topics add-iam-policy-binding "$TOPIC" --project="$PROJECT" \
    --member="serviceAccount:$gcs_agent" --role=roles/pubsub.publisher
  topic_name=projects/$PROJECT/topics/$TOPIC
  notifications=$(lookup "" gcloud storage buckets notifications list "gs://$DATASTREAM_BUCKET" --format='value(topic)')
  if grep -qxF "//pubsub.googleapis.com/$topic_name" <<<"$notifications"; then
    echo "# gs://$DATASTREAM_BUCKET already notifies $topic_name" >&2
  else
    notify=(--topic="$topic_name" --event-types=OBJECT_FINALIZE --payload-format=json)
    [ -n "$DATASTREAM_PREFIX" ] && notify+=(--object-prefix="$DATASTREAM_PREFIX")
    run gcloud storage buckets notifications create "gs://$DATASTREAM_BUCKET" "${notify[@]}"
  fi
fi

[ "$DRY_RUN" = 1 ] || echo "deployed: $SERVICE_URL/ (push subscription $SUBSCRIPTION on $TOPIC)" >&2
