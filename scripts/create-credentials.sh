#!/usr/bin/env bash
# Create credentials for a Scaleway NATS account and write them to ./nats.creds (mode 0600).
# The account: --account ID, else env NATS_ACCOUNT_ID, else the id in ./nats-account.json.
# Non-secret metadata (id, name, account, region) goes to ./nats-credentials.json, for delete-credentials.sh.
# --force replaces nats.creds, then deletes the credentials it held, so they stop working.
# Region: the one saved in nats-account.json; SCW_REGION only for an account given by id.
# Environment: SCW_SECRET_KEY, SCW_REGION, SCW_API_URL.
set -euo pipefail
USAGE="bash scripts/create-credentials.sh [--account ID] [--force] [NAME]   (NAME defaults to my-nats-credentials)"

# shellcheck source=scripts/scw.sh
. "$(dirname "$0")/scw.sh"

account=${NATS_ACCOUNT_ID:-}
force=0
name=
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h | --help) echo "usage: $USAGE" && exit 0 ;;
    --account) [ "$#" -ge 2 ] || usage_error; account=$2; shift ;;
    --force) force=1 ;;
    -*) usage_error ;;
    *) [ -z "$name" ] || usage_error; name=$1 ;;
  esac
  shift
done
name=${name:-my-nats-credentials}

scw_setup
saved_account=
if [ -f nats-account.json ]; then
  saved_account=$(jq -r '.id // empty' nats-account.json 2>/dev/null) || die "nats-account.json is not valid JSON"
fi
account=${account:-$saved_account}
[ -n "$account" ] ||
  die "which NATS account? pass --account ID, set NATS_ACCOUNT_ID, or create one with scripts/create-account.sh"
# The credentials are made in the account's region: the one saved with it, if it is the saved account.
if [ "$account" = "$saved_account" ]; then use_region nats-account.json; else use_region ""; fi
replaced='' replaced_region='' unknown_replaced=0
if [ -e nats.creds ]; then
  [ "$force" = 1 ] || die "nats.creds already exists; move it away, or pass --force to replace it"
  # The credentials in the old nats.creds stay valid until deleted: remember which ones to delete.
  if [ -f nats-credentials.json ]; then
    replaced=$(jq -r '.id // empty' nats-credentials.json 2>/dev/null) || true
    replaced_region=$(jq -r '.region // empty' nats-credentials.json 2>/dev/null) || true
  fi
  [ -n "$replaced" ] || unknown_replaced=1
fi

scw_api POST /nats-credentials "$(jq -nc --arg id "$account" --arg name "$name" '{nats_account_id: $id, name: $name}')"
# nats-py hangs on a creds file without its two blocks: never write anything else into nats.creds.
jq -e '.credentials.content | type == "string"
       and test("-----BEGIN NATS USER JWT-----\n[^\n]+\n------END NATS USER JWT------")
       and test("-----BEGIN USER NKEY SEED-----\n[^\n]+\n------END USER NKEY SEED------")' \
  "$WORK/answer" >/dev/null 2>&1 ||
  die "unexpected answer from the Scaleway API: no creds file in .credentials.content; nats.creds left as it was"
save_answer nats.creds -j '.credentials.content'
save_answer nats-credentials.json '{id, name, nats_account_id, region, created_at}'

echo "Wrote nats.creds (credentials '$name', id $(jq -r .id nats-credentials.json), mode 0600)."
endpoint=$(jq -r '.endpoint // empty' nats-account.json 2>/dev/null || true)
if [ -n "$endpoint" ] && [ "$endpoint" != "nats://nats.mnq.fr-par.scaleway.com:4222" ]; then
  echo "This account is not in fr-par: export NATS_URL=$endpoint"
fi
if [ -n "$replaced" ]; then
  API=$(api_for "${replaced_region:-$REGION}")  # where the replaced credentials were made
  ACCEPT_STATUS=404 scw_try DELETE "/nats-credentials/$replaced" ||
    die "the replaced credentials $replaced are still valid: $WHY; delete them in the Scaleway console (Messaging and Queuing > NATS > your account > Credentials)"
  if [ "$STATUS" = 404 ]; then
    echo "The credentials it replaced ($replaced) were already deleted."
  else
    echo "Deleted the credentials it replaced ($replaced): they no longer work."
  fi
elif [ "$unknown_replaced" = 1 ]; then
  echo "The replaced nats.creds had no nats-credentials.json beside it, so its credentials were not deleted; if they are Scaleway's, delete them in the console." >&2
fi
echo "Next: python3 sub.py in one terminal, python3 pub.py in another."
