#!/usr/bin/env bash
# Delete the Scaleway NATS account named in ./nats-account.json, with its credentials and streams,
# then remove nats-account.json, nats-credentials.json and nats.creds (the deletion revoked them).
# It asks first, unless --yes. The region is the one saved in nats-account.json.
# Environment: SCW_SECRET_KEY, SCW_API_URL.
set -euo pipefail
USAGE="bash scripts/delete-account.sh [--yes]"

# shellcheck source=scripts/scw.sh
. "$(dirname "$0")/scw.sh"

yes_flag_only "$@"
scw_setup
account=$(saved_id nats-account.json)
use_region nats-account.json

confirm "Delete NATS account '$(jq -r '.name // "?"' nats-account.json)' ($account) and all its credentials?"
ACCEPT_STATUS=404 scw_api DELETE "/nats-accounts/$account"
remove_files nats-account.json nats-credentials.json nats.creds
done="Deleted NATS account $account"
[ "$STATUS" != 404 ] || done="NATS account $account was not found in $REGION, so already deleted"
echo "$done; $REMOVED."
