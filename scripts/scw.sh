# shellcheck shell=bash
# Sourced by the Scaleway scripts: settings from the environment, and one function to call the API.
#
# Environment, as Scaleway's CLI and SDKs read it:
#   SCW_SECRET_KEY       the secret key of an API key (required)
#   SCW_PROJECT_ID       else SCW_DEFAULT_PROJECT_ID: the project (to create an account)
#   SCW_REGION           else SCW_DEFAULT_REGION, else fr-par: fr-par or nl-ams, for a new account;
#                        after that, the region saved in nats-account.json or nats-credentials.json
#   SCW_API_URL          else https://api.scaleway.com
#   SCW_API_TIMEOUT      seconds to wait for an answer (default 30)

PROG=$(basename "$0")
# Everything these scripts write is private to you, from the first byte: nats.creds is a secret.
umask 077

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

usage_error() {
  echo "usage: $USAGE" >&2
  exit 2
}

# remove_files FILE...: remove those that exist; REMOVED says which ("removed a and b", or "no local files").
remove_files() {
  local file gone=()
  for file in "$@"; do
    if [ -e "$file" ]; then
      rm -f "$file"
      gone+=("$file")
    fi
  done
  # shellcheck disable=SC2034  # REMOVED is read by the script that sourced this file
  case ${#gone[@]} in
    0) REMOVED="no local file to remove" ;;
    1) REMOVED="removed ${gone[0]}" ;;
    2) REMOVED="removed ${gone[0]} and ${gone[1]}" ;;
    *) REMOVED="removed ${gone[0]}, ${gone[1]} and ${gone[2]}" ;;
  esac
}

# scw_setup: check the tools and the secret key.
scw_setup() {
  local tool
  for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "$tool is not installed; install it (Debian/Ubuntu: sudo apt install $tool; macOS: brew install $tool)"
  done
  [ -n "${SCW_SECRET_KEY:-}" ] ||
    die "SCW_SECRET_KEY is not set; create an API key in the Scaleway console (IAM > API keys) and export its secret key"
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
}

# use_region SAVED_FILE: set REGION and API (the MnQ NATS API's base URL for that region).
# An account and its credentials live in the region they were created in: once a create script has saved
# it in SAVED_FILE ("" for none), that region is used, and an environment that names another one is an error.
use_region() {
  local saved="" variable=SCW_REGION wanted=${SCW_REGION:-}
  if [ -z "$wanted" ]; then variable=SCW_DEFAULT_REGION wanted=${SCW_DEFAULT_REGION:-}; fi
  if [ -f "$1" ]; then
    saved=$(jq -r '.region // empty' "$1" 2>/dev/null) || die "$1 is not valid JSON"
  fi
  if [ -n "$saved" ] && [ -n "$wanted" ] && [ "$saved" != "$wanted" ]; then
    die "$1 says region $saved, but $variable is $wanted; unset $variable (the saved region is used) or work in the directory of a $wanted account"
  fi
  REGION=${saved:-${wanted:-fr-par}}
  case "$REGION" in
    fr-par | nl-ams) ;;
    *) die "region '$REGION' (SCW_REGION or SCW_DEFAULT_REGION) has no NATS service; use fr-par or nl-ams" ;;
  esac
  API=$(api_for "$REGION")
}

# api_for REGION: the base URL of the MnQ NATS API in that region.
api_for() {
  local url=${SCW_API_URL:-https://api.scaleway.com}
  echo "${url%/}/mnq/v1beta1/regions/$1"
}

# project_id: SCW_PROJECT_ID, else SCW_DEFAULT_PROJECT_ID, else a clear error.
project_id() {
  local id=${SCW_PROJECT_ID:-${SCW_DEFAULT_PROJECT_ID:-}}
  [ -n "$id" ] ||
    die "SCW_PROJECT_ID (or SCW_DEFAULT_PROJECT_ID) is not set; copy your project's ID from the Scaleway console (Project settings)"
  echo "$id"
}

# scw_try METHOD PATH [JSON]: call the API; the answer's body goes to "$WORK/answer", its status to STATUS.
# On an HTTP error it returns 1 with WHY set to the status and the API's own message, type and details,
# unless the status is ACCEPT_STATUS (for instance ACCEPT_STATUS=404 scw_try DELETE ...).
scw_try() {
  local method=$1 path=$2 status
  local args=(--silent --show-error --request "$method" --output "$WORK/answer" --write-out '%{http_code}'
    --connect-timeout 10 --max-time "${SCW_API_TIMEOUT:-30}" --header 'Content-Type: application/json')
  if [ "$#" -gt 2 ]; then args+=(--data "$3"); fi
  # The secret key reaches curl on its standard input (--config -), never on its command line,
  # where any user of this machine could read it in the process list.
  local key=${SCW_SECRET_KEY//\\/\\\\}
  if ! status=$(printf 'header = "X-Auth-Token: %s"\n' "${key//\"/\\\"}" |
    curl --config - "${args[@]}" "$API$path" 2>"$WORK/curl.err"); then
    WHY="could not reach the Scaleway API at ${API%%/mnq/*}: $(tail -n 1 "$WORK/curl.err"); check your network or SCW_API_URL"
    return 1
  fi
  # shellcheck disable=SC2034  # read by the scripts that source this file
  STATUS=$status
  case "$status" in
    2?? | "${ACCEPT_STATUS:-}") return 0 ;;
  esac
  # The details say what exactly: which argument (400), which permission (403), which quota (403).
  local why type
  why=$(jq -r '([.message, (.type // empty | "(\(.))")] | map(select(. != null and . != "")) | join(" "))
               + ([.details[]? | if .argument_name then "\(.argument_name): \(.help_message // .reason)"
                                 elif .action then "\(.action) \(.resource)"
                                 elif .quota != null then "\(.resource): \(.current) of \(.quota) used"
                                 else empty end] | if length > 0 then ": " + join(", ") else "" end)' \
    "$WORK/answer" 2>/dev/null) ||
    why="an answer that is not JSON"
  type=$(jq -r '.type // empty' "$WORK/answer" 2>/dev/null) || true
  case "$type" in
    denied_authentication) why="$why; check SCW_SECRET_KEY" ;;
    permissions_denied) why="$why; give the API key's IAM policy access to Messaging and Queuing in this project" ;;
    quotas_exceeded) why="$why; delete what you no longer use (console: Organization > Quotas for the limits)" ;;
  esac
  WHY="the Scaleway API answered $status to $method $path: $why"
  return 1
}

# scw_api METHOD PATH [JSON]: scw_try, and die on an error.
scw_api() {
  scw_try "$@" || die "$WHY"
}

# save_answer FILE JQ_ARGS...: write what jq makes of the answer to FILE, complete or not at all.
save_answer() {
  local file=$1 tmp
  shift
  tmp=$(mktemp "$file.XXXXXX")
  if ! jq "$@" "$WORK/answer" >"$tmp"; then
    rm -f "$tmp"
    die "could not write $file"
  fi
  mv -f "$tmp" "$file"
}

# yes_flag_only "$@": the delete scripts take --yes (sets ASSUME_YES=1), -h/--help, and nothing else.
yes_flag_only() {
  ASSUME_YES=0
  case "$*" in
    "") ;;
    --yes) ASSUME_YES=1 ;;
    -h | --help) echo "usage: $USAGE" && exit 0 ;;
    *) usage_error ;;
  esac
}

# saved_id FILE: the id that create-account.sh or create-credentials.sh saved in FILE.
saved_id() {
  local id
  [ -f "$1" ] || die "no $1 here, so nothing to delete: run it where the create script wrote $1"
  id=$(jq -r '.id // empty' "$1" 2>/dev/null) || true
  [ -n "$id" ] || die "$1 holds no id"
  echo "$id"
}

# confirm QUESTION: yes with --yes; otherwise ask, but only on a terminal.
confirm() {
  [ "$ASSUME_YES" = 1 ] && return 0
  [ -t 0 ] || die "not a terminal, so cannot ask: '$1'; pass --yes to go ahead"
  local answer
  printf '%s [y/N] ' "$1"
  read -r answer
  case "$answer" in
    y | Y | yes | YES) return 0 ;;
    *) echo "Nothing deleted." && exit 1 ;;
  esac
}
