#!/usr/bin/env bash
# Create a Scaleway Messaging and Queuing NATS account (the v1alpha1 "namespace" of old tutorials).
# It saves the API's answer to ./nats-account.json; create-credentials.sh and delete-account.sh read it.
# Environment: SCW_SECRET_KEY, SCW_PROJECT_ID (or SCW_DEFAULT_PROJECT_ID), SCW_REGION, SCW_API_URL.
set -euo pipefail
USAGE="bash scripts/create-account.sh [NAME]   (NAME defaults to nats-broker)"

# shellcheck source=scripts/scw.sh
. "$(dirname "$0")/scw.sh"

case "${1:-}" in
  -h | --help) echo "usage: $USAGE" && exit 0 ;;
  -*) usage_error ;;
esac
[ "$#" -le 1 ] || usage_error
name=${1:-nats-broker}

scw_setup
use_region ""  # a new account: its region comes from the environment
project=$(project_id)
if [ -e nats-account.json ]; then
  die "nats-account.json already exists (account $(jq -r '.id? // "?"' nats-account.json 2>/dev/null || echo '?')); delete that account with scripts/delete-account.sh first, or work in another directory"
fi

scw_api POST /nats-accounts "$(jq -nc --arg name "$name" --arg project_id "$project" '{name: $name, project_id: $project_id}')"
jq -e '(.id | type == "string" and length > 0) and (.endpoint | type == "string")' "$WORK/answer" >/dev/null 2>&1 ||
  die "unexpected answer from the Scaleway API: no account id or endpoint; nothing saved"
save_answer nats-account.json .

echo "Created NATS account '$name': $(jq -r .id nats-account.json)"
echo "Endpoint: $(jq -r .endpoint nats-account.json)"
echo "Saved to nats-account.json. Next: bash scripts/create-credentials.sh"
