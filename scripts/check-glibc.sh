#!/usr/bin/env bash
# usage: check-glibc.sh BINARY MAX_VERSION — fails when BINARY needs a glibc symbol version newer
# than MAX_VERSION (AWS Lambda's provided.al2023 ships glibc 2.34).
set -euo pipefail
bin=$1 max=$2
need=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
newest=$(printf '%s\n%s\n' "$need" "$max" | sort -V | tail -n 1)
if [ "$newest" != "$max" ]; then
  echo "$bin needs GLIBC_$need, newer than GLIBC_$max"; exit 1
fi
echo "$bin needs at most GLIBC_$need (limit GLIBC_$max)"
