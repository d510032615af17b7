"""scripts/create-account.sh, create-credentials.sh, delete-*.sh against a stand-in of Scaleway's API."""

import json
import os
import pty
import shutil
import stat
import subprocess
import urllib.error
import urllib.request

import local_broker
import nkeys
import pytest
from helpers import ROOT, TUTORIAL_MESSAGES, assert_error, clean_env, free_port
from scaleway_api import ACCOUNT_QUOTA, PERMISSIONS_DENIED, PROJECT_ID, SECRET_KEY, ScalewayAPI

FR_PAR = "nats://nats.mnq.fr-par.scaleway.com:4222"


def some_creds():
    """A well-formed creds file for an account nobody serves."""
    return local_broker.user_creds(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT))


@pytest.fixture
def api():
    server = ScalewayAPI(creds_content=some_creds())
    yield server
    server.close()


@pytest.fixture
def curl_log(tmp_path):
    """A curl earlier on PATH that records its arguments, then runs the real curl."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "curl-arguments.log"
    (bin_dir / "curl").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec {shutil.which("curl")} "$@"\n')
    (bin_dir / "curl").chmod(0o755)
    log.touch()
    return log


@pytest.fixture
def scw(api, curl_log, workdir):
    """scw("create-account.sh", *args, **env) -> CompletedProcess, run in workdir as a user would."""

    def run(script, *args, stdin=subprocess.DEVNULL, **env):
        environment = clean_env(SCW_SECRET_KEY=SECRET_KEY, SCW_DEFAULT_PROJECT_ID=PROJECT_ID, SCW_API_URL=api.url)
        environment["PATH"] = f"{curl_log.parent / 'bin'}:{environment['PATH']}"
        environment.update(env)
        environment = {k: v for k, v in environment.items() if v is not None}
        return subprocess.run(
            ["bash", os.path.join(ROOT, "scripts", script), *args],
            env=environment,
            cwd=workdir,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def in_workdir(workdir, name):
    return os.path.join(workdir, name)


def files(workdir):
    return sorted(os.listdir(workdir))


# create-account.sh


def test_create_account_posts_its_name_and_project_and_saves_the_answer(scw, api, workdir):
    result = scw("create-account.sh")

    assert result.returncode == 0, result.stderr
    [(method, path, headers, body)] = api.requests
    assert (method, path, body) == (
        "POST",
        "/mnq/v1beta1/regions/fr-par/nats-accounts",
        {"name": "nats-broker", "project_id": PROJECT_ID},
    )
    assert headers["X-Auth-Token"] == SECRET_KEY
    assert headers["Content-Type"] == "application/json"
    [account] = api.accounts.values()
    assert json.load(open(in_workdir(workdir, "nats-account.json"))) == account
    assert result.stdout.splitlines() == [
        f"Created NATS account 'nats-broker': {account['id']}",
        f"Endpoint: {FR_PAR}",
        "Saved to nats-account.json. Next: bash scripts/create-credentials.sh",
    ]


def test_create_account_takes_a_name_and_SCW_PROJECT_ID_first(scw, api):
    result = scw("create-account.sh", "orders", SCW_PROJECT_ID="p-first")

    assert result.returncode == 0, result.stderr
    assert api.requests[0][3] == {"name": "orders", "project_id": "p-first"}


@pytest.mark.parametrize(
    "env, region",
    [
        ({}, "fr-par"),
        ({"SCW_DEFAULT_REGION": "nl-ams"}, "nl-ams"),
        ({"SCW_DEFAULT_REGION": "fr-par", "SCW_REGION": "nl-ams"}, "nl-ams"),
    ],
)
def test_the_region_comes_from_SCW_REGION_then_SCW_DEFAULT_REGION_else_fr_par(env, region, scw, api):
    assert scw("create-account.sh", **env).returncode == 0
    assert api.requests[0][1] == f"/mnq/v1beta1/regions/{region}/nats-accounts"


def test_a_region_without_nats_is_refused(scw, api, workdir):
    result = scw("create-account.sh", SCW_REGION="pl-waw")

    assert_error(
        result,
        "create-account.sh: error: region 'pl-waw' (SCW_REGION or SCW_DEFAULT_REGION) "
        "has no NATS service; use fr-par or nl-ams",
    )
    assert api.requests == [] and files(workdir) == []


def test_create_account_never_replaces_nats_account_json(scw, api, workdir):
    open(in_workdir(workdir, "nats-account.json"), "w").write('{"id": "AOLD"}\n')

    result = scw("create-account.sh")

    assert_error(
        result,
        "create-account.sh: error: nats-account.json already exists (account AOLD); delete that "
        "account with scripts/delete-account.sh first, or work in another directory",
    )
    assert api.requests == []
    assert open(in_workdir(workdir, "nats-account.json")).read() == '{"id": "AOLD"}\n'


def test_an_account_answer_without_id_or_endpoint_is_not_saved(scw, api, workdir):
    api.override = (200, {"message": "something else"})

    result = scw("create-account.sh")

    assert_error(
        result,
        "create-account.sh: error: unexpected answer from the Scaleway API: no account id or endpoint; nothing saved",
    )
    assert files(workdir) == []


# create-credentials.sh


def test_create_credentials_writes_a_private_nats_creds_and_its_metadata(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    [account] = api.accounts

    result = scw("create-credentials.sh")

    assert result.returncode == 0, result.stderr
    method, path, headers, body = api.requests[-1]
    assert (method, path, body) == (
        "POST",
        "/mnq/v1beta1/regions/fr-par/nats-credentials",
        {"nats_account_id": account, "name": "my-nats-credentials"},
    )
    assert headers["X-Auth-Token"] == SECRET_KEY
    creds = in_workdir(workdir, "nats.creds")
    assert open(creds).read() == api.creds_content
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    [answer] = api.credentials.values()
    metadata = json.load(open(in_workdir(workdir, "nats-credentials.json")))
    assert metadata == {k: answer[k] for k in ("id", "name", "nats_account_id", "region", "created_at")}
    assert "SEED" not in open(in_workdir(workdir, "nats-credentials.json")).read()
    assert files(workdir) == ["nats-account.json", "nats-credentials.json", "nats.creds"]
    assert result.stdout.splitlines() == [
        f"Wrote nats.creds (credentials 'my-nats-credentials', id {answer['id']}, mode 0600).",
        "Next: python3 sub.py in one terminal, python3 pub.py in another.",
    ]


@pytest.mark.parametrize("source", ["--account", "NATS_ACCOUNT_ID", "nats-account.json"])
def test_create_credentials_finds_the_account(source, scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    [account] = api.accounts
    if source != "nats-account.json":
        os.remove(in_workdir(workdir, "nats-account.json"))
    args = ["--account", account] if source == "--account" else []
    env = {"NATS_ACCOUNT_ID": account} if source == "NATS_ACCOUNT_ID" else {}

    result = scw("create-credentials.sh", *args, "other-name", **env)

    assert result.returncode == 0, result.stderr
    assert api.requests[-1][3] == {"nats_account_id": account, "name": "other-name"}


def test_create_credentials_without_an_account_says_where_to_get_one(scw, api):
    result = scw("create-credentials.sh")

    assert_error(
        result,
        "create-credentials.sh: error: which NATS account? pass --account ID, "
        "set NATS_ACCOUNT_ID, or create one with scripts/create-account.sh",
    )
    assert api.requests == []


def test_create_credentials_never_replaces_nats_creds_without_force(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    open(in_workdir(workdir, "nats.creds"), "w").write("my old creds\n")

    refused = scw("create-credentials.sh")

    assert_error(
        refused, "create-credentials.sh: error: nats.creds already exists; move it away, or pass --force to replace it"
    )
    assert len(api.requests) == 1
    assert open(in_workdir(workdir, "nats.creds")).read() == "my old creds\n"

    forced = scw("create-credentials.sh", "--force")

    assert forced.returncode == 0, forced.stderr
    assert open(in_workdir(workdir, "nats.creds")).read() == api.creds_content


def test_create_credentials_tells_the_NATS_URL_outside_fr_par(scw, api):
    assert scw("create-account.sh", SCW_REGION="nl-ams").returncode == 0

    result = scw("create-credentials.sh")

    assert "This account is not in fr-par: export NATS_URL=nats://nats.mnq.nl-ams.scaleway.com:4222" in result.stdout


@pytest.mark.parametrize(
    "content",
    ["", None, "not a creds file", "-----BEGIN NATS USER JWT-----\nabc\n"],
    ids=["empty", "null", "garbage", "half"],
)
def test_an_answer_without_a_creds_file_is_never_written(content, scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    api.creds_content = content

    result = scw("create-credentials.sh")

    assert_error(
        result,
        "create-credentials.sh: error: unexpected answer from the Scaleway API: "
        "no creds file in .credentials.content; nats.creds left as it was",
    )
    assert files(workdir) == ["nats-account.json"]


# Errors shared by every script


@pytest.mark.parametrize("script", ["create-account.sh", "create-credentials.sh", "delete-account.sh"])
def test_a_missing_secret_key_is_named(script, scw, api, workdir):
    result = scw(script, SCW_SECRET_KEY="")

    assert_error(
        result,
        f"{script}: error: SCW_SECRET_KEY is not set; create an API key in the Scaleway console "
        "(IAM > API keys) and export its secret key",
    )
    assert api.requests == [] and files(workdir) == []


def test_a_missing_project_id_is_named(scw, api, workdir):
    result = scw("create-account.sh", SCW_DEFAULT_PROJECT_ID=None)

    assert_error(
        result,
        "create-account.sh: error: SCW_PROJECT_ID (or SCW_DEFAULT_PROJECT_ID) is not set; "
        "copy your project's ID from the Scaleway console (Project settings)",
    )
    assert api.requests == [] and files(workdir) == []


@pytest.mark.parametrize("tool", ["curl", "jq"])
def test_a_missing_curl_or_jq_is_named(tool, scw, tmp_path):
    bin_dir = tmp_path / "only"
    bin_dir.mkdir()
    for needed in ("bash", "curl", "jq", "mktemp", "basename", "dirname", "rm", "mv", "cat", "tail"):
        if needed != tool:
            os.symlink(shutil.which(needed), bin_dir / needed)

    result = scw("create-account.sh", PATH=str(bin_dir))

    assert_error(
        result,
        f"create-account.sh: error: {tool} is not installed; install it "
        f"(Debian/Ubuntu: sudo apt install {tool}; macOS: brew install {tool})",
    )


def test_a_rejected_secret_key_prints_the_apis_message(scw, workdir):
    result = scw("create-account.sh", SCW_SECRET_KEY="00000000-0000-0000-0000-000000000000")

    assert_error(
        result,
        "create-account.sh: error: the Scaleway API answered 401 to POST /nats-accounts: "
        "authentication is denied (denied_authentication); check SCW_SECRET_KEY",
    )
    assert files(workdir) == []


def test_an_invalid_argument_prints_the_apis_details(scw, workdir):
    result = scw("create-credentials.sh", "--account", "too-short")

    assert_error(
        result,
        "create-credentials.sh: error: the Scaleway API answered 400 to POST /nats-credentials: "
        "invalid argument(s) (invalid_arguments): nats_account_id: value length must be 56 runes",
    )
    assert files(workdir) == []


def test_an_unknown_account_prints_not_found(scw, workdir):
    result = scw("create-credentials.sh", "--account", "A" * 56)

    assert_error(
        result,
        "create-credentials.sh: error: the Scaleway API answered 404 to POST /nats-credentials: "
        "resource is not found (not_found)",
    )
    assert files(workdir) == []


def test_a_quota_error_names_the_quota_and_saves_nothing(scw, api, workdir):
    for _ in range(ACCOUNT_QUOTA):
        assert scw("create-account.sh").returncode == 0
        os.remove(in_workdir(workdir, "nats-account.json"))

    result = scw("create-account.sh")

    assert_error(
        result,
        "create-account.sh: error: the Scaleway API answered 403 to POST /nats-accounts: "
        "quota(s) exceeded for this resource (quotas_exceeded): mnq_nats_accounts: 10 of 10 used; "
        "delete what you no longer use (console: Organization > Quotas for the limits)",
    )
    assert files(workdir) == []


def test_a_missing_permission_names_the_action_and_resource(scw, api, workdir):
    api.override = PERMISSIONS_DENIED

    result = scw("create-account.sh")

    assert_error(
        result,
        "create-account.sh: error: the Scaleway API answered 403 to POST /nats-accounts: "
        "insufficient permissions (permissions_denied): read namespace; "
        "give the API key's IAM policy access to Messaging and Queuing in this project",
    )
    assert files(workdir) == []


def test_an_error_that_is_not_json_is_still_explained(scw, api, workdir):
    api.override = (502, b"<html>Bad Gateway</html>")

    result = scw("create-account.sh")

    assert_error(
        result,
        "create-account.sh: error: the Scaleway API answered 502 to POST /nats-accounts: an answer that is not JSON",
    )
    assert files(workdir) == []


def test_an_unreachable_api_is_reported(scw, workdir):
    url = f"http://127.0.0.1:{free_port()}"

    result = scw("create-account.sh", SCW_API_URL=url)

    assert result.returncode == 1
    assert result.stderr.startswith(f"create-account.sh: error: could not reach the Scaleway API at {url}: curl: (7)")
    assert result.stderr.rstrip().endswith("check your network or SCW_API_URL")
    assert files(workdir) == []


def test_an_api_that_does_not_answer_times_out(scw, api, workdir):
    api.stalled = True

    result = scw("create-account.sh", SCW_API_TIMEOUT="1")

    assert result.returncode == 1
    assert result.stderr.startswith(
        f"create-account.sh: error: could not reach the Scaleway API at {api.url}: curl: (28)"
    )
    assert files(workdir) == []


def test_the_secret_key_never_appears_on_curls_command_line(scw, api, curl_log, workdir):
    for script in ("create-account.sh", "create-credentials.sh"):
        assert scw(script).returncode == 0
    assert scw("delete-account.sh", "--yes").returncode == 0

    arguments = curl_log.read_text()
    assert arguments.count("\n") == 3, "curl was not called through the recording wrapper"
    assert SECRET_KEY not in arguments
    assert all(h["X-Auth-Token"] == SECRET_KEY for _, _, h, _ in api.requests)


def test_scripts_have_usage_lines(scw):
    for script in ("create-account.sh", "create-credentials.sh", "delete-account.sh", "delete-credentials.sh"):
        help_result = scw(script, "--help")
        assert help_result.returncode == 0
        assert help_result.stdout.startswith(f"usage: bash scripts/{script}")
        wrong = scw(script, "--no-such-flag")
        assert wrong.returncode == 2
        assert wrong.stderr.startswith(f"usage: bash scripts/{script}")


# delete-account.sh and delete-credentials.sh


def test_delete_account_with_yes_deletes_it_and_removes_the_local_files(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    assert scw("create-credentials.sh").returncode == 0
    [account] = api.accounts

    result = scw("delete-account.sh", "--yes")

    assert result.returncode == 0, result.stderr
    assert api.requests[-1][:2] == ("DELETE", f"/mnq/v1beta1/regions/fr-par/nats-accounts/{account}")
    assert api.accounts == {}
    assert files(workdir) == []
    assert result.stdout.splitlines()[-1] == (
        f"Deleted NATS account {account}; removed nats-account.json, nats-credentials.json and nats.creds."
    )


def test_delete_account_names_only_the_local_files_it_removed(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    [account] = api.accounts

    result = scw("delete-account.sh", "--yes")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"Deleted NATS account {account}; removed nats-account.json."


@pytest.mark.parametrize(
    "script, saved, what, collection",
    [
        ("delete-account.sh", "nats-account.json", "NATS account", "nats-accounts"),
        ("delete-credentials.sh", "nats-credentials.json", "NATS credentials", "nats-credentials"),
    ],
)
def test_deleting_what_is_already_gone_names_the_region_and_still_cleans_up(
    script, saved, what, collection, scw, api, workdir
):
    assert scw("create-account.sh", SCW_REGION="nl-ams").returncode == 0
    assert scw("create-credentials.sh").returncode == 0
    gone = json.load(open(in_workdir(workdir, saved)))["id"]
    api.accounts.clear()
    api.credentials.clear()

    result = scw(script, "--yes")

    assert result.returncode == 0, result.stderr
    assert api.requests[-1][:2] == ("DELETE", f"/mnq/v1beta1/regions/nl-ams/{collection}/{gone}")
    assert result.stdout.startswith(f"{what} {gone} was not found in nl-ams, so already deleted; removed ")
    assert saved not in files(workdir) and "nats.creds" not in files(workdir)


def test_delete_account_without_a_terminal_or_yes_refuses(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    [account] = api.accounts

    result = scw("delete-account.sh")

    assert_error(
        result,
        f"delete-account.sh: error: not a terminal, so cannot ask: 'Delete NATS account "
        f"'nats-broker' ({account}) and all its credentials?'; pass --yes to go ahead",
    )
    assert list(api.accounts) == [account]
    assert files(workdir) == ["nats-account.json"]


@pytest.mark.parametrize("answer, deleted", [(b"y\n", True), (b"n\n", False)])
def test_delete_account_asks_on_a_terminal(answer, deleted, scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    controller, terminal = pty.openpty()
    os.write(controller, answer)
    try:
        result = scw("delete-account.sh", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)

    assert result.stdout.startswith("Delete NATS account 'nats-broker'")
    assert result.returncode == (0 if deleted else 1)
    assert (api.accounts == {}) == deleted
    assert (files(workdir) == []) == deleted


def test_delete_account_without_nats_account_json_says_so(scw, api):
    result = scw("delete-account.sh", "--yes")

    assert_error(
        result,
        "delete-account.sh: error: no nats-account.json here, so nothing to delete: "
        "run it where the create script wrote nats-account.json",
    )
    assert api.requests == []


def test_delete_credentials_deletes_them_and_keeps_the_account(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    assert scw("create-credentials.sh").returncode == 0
    [account], [credentials] = api.accounts, api.credentials

    result = scw("delete-credentials.sh", "--yes")

    assert result.returncode == 0, result.stderr
    assert api.requests[-1][:2] == ("DELETE", f"/mnq/v1beta1/regions/fr-par/nats-credentials/{credentials}")
    assert api.credentials == {} and list(api.accounts) == [account]
    assert files(workdir) == ["nats-account.json"]


# The region follows the account: after create-account.sh, it comes from what was saved.


def test_an_nl_ams_account_is_used_in_nl_ams_by_every_later_script_in_fresh_shells(scw, api, workdir):
    assert scw("create-account.sh", SCW_REGION="nl-ams").returncode == 0
    [account] = api.accounts

    # Each script runs in a new shell: no SCW_REGION, no SCW_DEFAULT_REGION.
    assert scw("create-credentials.sh").returncode == 0
    assert json.load(open(in_workdir(workdir, "nats-credentials.json")))["region"] == "nl-ams"
    assert scw("create-credentials.sh", "--force").returncode == 0
    assert scw("delete-credentials.sh", "--yes").returncode == 0
    assert scw("create-credentials.sh").returncode == 0
    deleted = scw("delete-account.sh", "--yes")

    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith(f"Deleted NATS account {account};")
    assert api.accounts == {} and api.credentials == {}, "the account is still alive and billed"
    assert [path.split("/")[4] for _, path, _, _ in api.requests] == ["nl-ams"] * len(api.requests)


@pytest.mark.parametrize("script", ["create-credentials.sh", "delete-account.sh"])
@pytest.mark.parametrize("variable", ["SCW_REGION", "SCW_DEFAULT_REGION"])
def test_a_region_in_the_environment_that_is_not_the_saved_one_is_an_error(variable, script, scw, api, workdir):
    assert scw("create-account.sh", SCW_REGION="nl-ams").returncode == 0
    sent = len(api.requests)

    result = scw(script, "--yes" if script.startswith("delete") else "--force", **{variable: "fr-par"})

    assert_error(
        result,
        f"{script}: error: nats-account.json says region nl-ams, but {variable} is fr-par; "
        f"unset {variable} (the saved region is used) or work in the directory of a fr-par account",
    )
    assert len(api.requests) == sent
    assert files(workdir) == ["nats-account.json"]


def test_the_same_region_in_the_environment_is_fine(scw, api):
    assert scw("create-account.sh", SCW_REGION="nl-ams").returncode == 0

    result = scw("create-credentials.sh", SCW_DEFAULT_REGION="nl-ams")

    assert result.returncode == 0, result.stderr


def test_an_account_given_by_id_takes_the_region_from_the_environment(scw, api, workdir):
    assert scw("create-account.sh", SCW_REGION="nl-ams").returncode == 0
    [account] = api.accounts
    os.remove(in_workdir(workdir, "nats-account.json"))

    assert scw("create-credentials.sh", "--account", account, SCW_REGION="nl-ams").returncode == 0
    assert api.requests[-1][1] == "/mnq/v1beta1/regions/nl-ams/nats-credentials"


# create-credentials.sh --force: the credentials it replaces stop working.


def test_force_deletes_the_credentials_it_replaces(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    assert scw("create-credentials.sh").returncode == 0
    [account], [old] = api.accounts, api.credentials
    api.creds_content = some_creds()

    result = scw("create-credentials.sh", "--force")

    assert result.returncode == 0, result.stderr
    [new] = api.credentials
    assert [c["id"] for c in api.credentials_of(account)] == [new], "exactly one credential on the account"
    assert api.requests[-1][:2] == ("DELETE", f"/mnq/v1beta1/regions/fr-par/nats-credentials/{old}")
    assert open(in_workdir(workdir, "nats.creds")).read() == api.creds_content
    assert json.load(open(in_workdir(workdir, "nats-credentials.json")))["id"] == new
    assert result.stdout.splitlines() == [
        f"Wrote nats.creds (credentials 'my-nats-credentials', id {new}, mode 0600).",
        f"Deleted the credentials it replaced ({old}): they no longer work.",
        "Next: python3 sub.py in one terminal, python3 pub.py in another.",
    ]


def test_force_says_which_credentials_are_still_valid_when_their_deletion_fails(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    assert scw("create-credentials.sh").returncode == 0
    [old] = api.credentials
    api.creds_content = some_creds()
    api.fail["DELETE", "nats-credentials"] = PERMISSIONS_DENIED

    result = scw("create-credentials.sh", "--force")

    assert_error(
        result,
        f"create-credentials.sh: error: the replaced credentials {old} are still valid: "
        f"the Scaleway API answered 403 to DELETE /nats-credentials/{old}: insufficient permissions "
        "(permissions_denied): read namespace; give the API key's IAM policy access to Messaging "
        "and Queuing in this project; delete them in the Scaleway console "
        "(Messaging and Queuing > NATS > your account > Credentials)",
    )
    assert old in api.credentials and len(api.credentials) == 2
    assert open(in_workdir(workdir, "nats.creds")).read() == api.creds_content, "the new creds are in place"


def test_force_over_a_creds_file_of_unknown_origin_says_it_deleted_nothing(scw, api, workdir):
    assert scw("create-account.sh").returncode == 0
    open(in_workdir(workdir, "nats.creds"), "w").write("creds from elsewhere\n")

    result = scw("create-credentials.sh", "--force")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "The replaced nats.creds had no nats-credentials.json beside it, so its credentials were not deleted; "
        "if they are Scaleway's, delete them in the console."
    ]
    assert [method for method, _, _, _ in api.requests] == ["POST", "POST"]


# The stand-in answers as the real API does.


def test_the_stand_in_keeps_accounts_and_credentials_in_their_region(api):
    def call(method, path, body=None):
        request = urllib.request.Request(
            f"{api.url}/mnq/v1beta1/regions/{path}",
            method=method,
            data=json.dumps(body).encode() if body else None,
            headers={"X-Auth-Token": SECRET_KEY},
        )
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    _, account = call("POST", "nl-ams/nats-accounts", {"name": "a", "project_id": PROJECT_ID})
    _, creds = call("POST", "nl-ams/nats-credentials", {"nats_account_id": account["id"], "name": "c"})
    assert account["endpoint"] == "nats://nats.mnq.nl-ams.scaleway.com:4222"
    assert call("GET", f"fr-par/nats-accounts/{account['id']}") == (
        404,
        {
            "message": "resource is not found",
            "resource": "namespace",
            "resource_id": account["id"],
            "type": "not_found",
        },
    )
    assert call("GET", f"fr-par/nats-credentials/{creds['id']}")[1]["resource"] == "credentials"
    status, got = call("GET", f"nl-ams/nats-credentials/{creds['id']}")
    assert status == 200 and got["credentials"] is None and len(got["checksum"]) == 40
    assert call("GET", f"nl-ams/nats-credentials?nats_account_id={account['id']}&page_size=1")[1]["total_count"] == 1
    assert call("GET", "fr-par/nats-accounts")[1] == {"total_count": 0, "nats_accounts": []}
    assert call("DELETE", f"nl-ams/nats-accounts/{account['id']}") == (204, None)
    assert api.credentials == {}, "deleting an account deletes its credentials"


# The whole journey: the stand-in hands out an account on the local test broker and real creds for it.


@pytest.mark.parametrize("region", ["fr-par", "nl-ams"])
def test_the_scaleway_journey_from_account_to_messages(region, make_broker, start, run, scw, api, workdir, tmp_path):
    broker = make_broker(tls=True)
    api.endpoint = broker.url
    api.creds_content = open(broker.new_creds(str(tmp_path / "real.creds"))).read()

    # The region is chosen once; every later step runs in a fresh shell with no region in its environment.
    created = scw("create-account.sh", SCW_REGION=region)
    assert created.returncode == 0, created.stderr
    credentials = scw("create-credentials.sh")
    assert credentials.returncode == 0, credentials.stderr
    assert f"This account is not in fr-par: export NATS_URL={broker.url}" in credentials.stdout

    # What the README says: export the endpoint, and sub.py and pub.py find ./nats.creds by themselves.
    env = clean_env(NATS_URL=json.load(open(in_workdir(workdir, "nats-account.json")))["endpoint"], NATS_CA=broker.ca)
    sub = start("sub.py", "--count", "2", env=env)
    sub.wait_for_line("Subscription OK")
    assert run("pub.py", env=env).returncode == 0
    assert sub.wait() == 0
    assert sub.lines[4:8] == TUTORIAL_MESSAGES

    assert scw("delete-account.sh", "--yes").returncode == 0
    assert files(workdir) == []
    assert api.accounts == {}
    assert {path.split("/")[4] for _, path, _, _ in api.requests} == {region}
