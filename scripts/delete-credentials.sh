#!/usr/bin/env bash
# Delete the Scaleway NATS credentials named in ./nats-credentials.json (open connections using them
# are closed), then remove nats-credentials.json and nats.creds. It asks first, unless --yes.
# The region is the one saved in nats-credentials.json. Environment: SCW_SECRET_KEY, SCW_API_URL.
set -euo pipefail
USAGE="bash scripts/delete-credentials.sh [--yes]"

# shellcheck source=scripts/scw.sh
. "$(dirname "$0")/scw.sh"

yes_flag_only "$@"
scw_setup
credentials=$(saved_id nats-credentials.json)
use_region nats-credentials.json

confirm "Delete NATS credentials '$(jq -r '.name // "?"' nats-credentials.json)' ($credentials)?"
ACCEPT_STATUS=404 scw_api DELETE "/nats-credentials/$credentials"
remove_files nats-credentials.json nats.creds
done="Deleted NATS credentials $credentials"
[ "$STATUS" != 404 ] || done="NATS credentials $credentials was not found in $REGION, so already deleted"
echo "$done; $REMOVED."
