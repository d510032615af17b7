"""Bad input gets one clear line on stderr and an exit code (2: configuration, 1: run time); never a hang."""

import os
import shutil
import socket

import pytest
from helpers import BOTH, Broker, assert_error, assert_usage_error, clean_env

GET_ONE = "get one with scripts/create-credentials.sh (Scaleway) or scripts/local-broker.sh"


def jwt_block(creds):
    return open(creds).read().split("\n\n", 1)[0] + "\n"


def seed_block(creds):
    text = open(creds).read()
    return text[text.index("-----BEGIN USER NKEY SEED") :]


@BOTH
def test_a_missing_creds_file_is_named_with_the_flag_and_variable_and_how_to_get_one(script, broker, run):
    result = run(script, env=broker.env(NATS_CREDS="/nonexistent/nats.creds"))
    assert_error(
        result,
        f"{script}: error: cannot read credentials file /nonexistent/nats.creds (--creds or "
        f"NATS_CREDS): No such file or directory; {GET_ONE}",
        code=2,
    )


@BOTH
def test_a_terminal_where_the_local_brokers_exports_were_not_pasted_is_told_so(script, run):
    result = run(script, env=clean_env())

    assert_error(
        result,
        f"{script}: error: cannot read credentials file nats.creds (--creds or NATS_CREDS): "
        "No such file or directory; NATS_URL and NATS_CREDS are not set in this terminal: for "
        "the local broker, paste the three export lines it printed; for Scaleway, get a file "
        "with scripts/create-credentials.sh",
        code=2,
    )


@BOTH
@pytest.mark.parametrize(
    "content, missing",
    [
        ("", "NATS USER JWT"),
        ("null\n", "NATS USER JWT"),
        (seed_block, "NATS USER JWT"),
        (jwt_block, "USER NKEY SEED"),
    ],
    ids=["empty", "null", "no-jwt", "no-seed"],
)
def test_a_malformed_creds_file_is_refused_before_connecting(script, content, missing, broker, run, tmp_path):
    bad = tmp_path / "bad.creds"
    bad.write_text(content if isinstance(content, str) else content(broker.creds))

    result = run(script, "--creds", str(bad), env=broker.env(), timeout=10)

    assert_error(result, f"{script}: error: credentials file {bad} is malformed: no {missing} block; {GET_ONE}", code=2)


def test_a_creds_file_with_crlf_line_endings_works(broker, start, run, tmp_path):
    crlf = tmp_path / "crlf.creds"  # as Windows tools (jq.exe, Notepad) write it
    crlf.write_bytes(open(broker.creds, "rb").read().replace(b"\n", b"\r\n"))
    env = broker.env(NATS_CREDS=str(crlf))
    sub = start("sub.py", "--count", "1", env=env)
    sub.wait_for_line("Subscription OK")

    pub = run("pub.py", "hello", env=env)

    assert pub.returncode == 0, pub.stderr
    assert sub.wait() == 0
    assert "Received a message on 'my-subject': hello" in sub.lines


@BOTH
@pytest.mark.parametrize("encoding", ["utf-16", "binary"])
def test_a_creds_file_that_is_not_text_is_refused(script, encoding, broker, run, tmp_path):
    bad = tmp_path / "bad.creds"
    text = open(broker.creds).read()
    bad.write_bytes(text.encode("utf-16") if encoding == "utf-16" else os.urandom(512))

    result = run(script, "--creds", str(bad), env=broker.env(), timeout=10)

    assert_error(result, f"{script}: error: credentials file {bad} is not a text file (UTF-8); {GET_ONE}", code=2)


@BOTH
def test_creds_rejected_by_the_server_say_authorization_failed(script, broker, make_broker, run):
    stranger = make_broker()  # another operator: its user is unknown to `broker`

    result = run(script, "--creds", stranger.creds, env=broker.env(), timeout=10)

    assert_error(
        result,
        f"{script}: error: authorization failed at {broker.url}: "
        f"the server rejected the credentials in {stranger.creds}",
    )
    assert result.seconds < 5, "retried credentials that cannot succeed"


@pytest.fixture
def silent_server():
    """A URL where a server accepts connections and never says a word, like a host that does not answer."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"nats://127.0.0.1:{listener.getsockname()[1]}"


@BOTH
def test_a_refused_connection_is_named_at_once(script, broker, run):
    closed = Broker.unused_url()

    result = run(script, env=broker.env(NATS_URL=closed), timeout=30)

    assert_error(
        result,
        f"{script}: error: could not connect to {closed}: connection refused, nothing listens "
        "there; check --server or NATS_URL",
    )
    assert result.seconds < 2


def test_a_list_of_servers_that_all_refuse_is_named_at_once(broker, run):
    servers = f"{Broker.unused_url()},{Broker.unused_url()}"

    result = run("pub.py", "-s", servers, env=broker.env(), timeout=30)

    assert_error(
        result,
        f"pub.py: error: could not connect to {servers}: connection refused, nothing listens "
        "there; check --server or NATS_URL",
    )
    assert result.seconds < 2


def test_a_server_that_does_not_answer_is_named_after_10_seconds_by_default(silent_server, broker, run):
    result = run("pub.py", env=broker.env(NATS_URL=silent_server), timeout=30)

    assert_error(
        result,
        f"pub.py: error: could not connect to {silent_server} within 10 s (no answer); check --server or NATS_URL",
    )
    assert 9 < result.seconds < 13


@BOTH
def test_timeout_changes_how_long_to_wait(script, silent_server, broker, run):
    result = run(script, "--timeout", "1.5", env=broker.env(NATS_URL=silent_server), timeout=30)

    assert_error(
        result,
        f"{script}: error: could not connect to {silent_server} within 1.5 s (no answer); check --server or NATS_URL",
    )
    assert result.seconds < 5


@pytest.mark.skipif(
    not shutil.which("unshare") or os.geteuid() != 0,
    reason="needs root and unshare, to fail the lookup without asking any DNS server",
)
def test_a_host_name_that_does_not_resolve_is_named_at_once(broker, run):
    # In an empty network namespace the lookup fails at once, and no packet leaves this machine.
    url = "nats://no-such-host.invalid:4222"
    env = broker.env(NATS_URL=url)

    result = run("pub.py", env=env, prefix=["unshare", "--net"], timeout=30)

    assert_error(
        result,
        f"pub.py: error: could not connect to {url}: unknown host "
        "(Temporary failure in name resolution); check --server or NATS_URL",
    )
    assert result.seconds < 2


def test_a_message_larger_than_max_payload_is_refused(make_broker, run):
    broker = make_broker(max_payload=1024)

    result = run("pub.py", "x" * 1025, env=broker.env())

    assert_error(
        result,
        "pub.py: error: message too large: the server accepts at most 1024 bytes with the headers (max_payload; "
        "MnQ's quota: 512 KB)",
    )


def test_a_publish_the_server_refuses_is_reported_as_permission_denied(broker, run, tmp_path):
    creds = broker.new_creds(str(tmp_path / "no-publish.creds"), deny_publish=["my-subject"])

    # The refusal arrives asynchronously: try several times to catch it arriving late.
    for _ in range(5):
        result = run("pub.py", "--creds", creds, env=broker.env())
        assert_error(result, "pub.py: error: permission denied: these credentials may not publish to 'my-subject'")
        assert "Published" not in result.stdout


def test_a_publish_to_an_allowed_subject_succeeds_with_the_same_creds(broker, run, tmp_path):
    creds = broker.new_creds(str(tmp_path / "no-publish.creds"), deny_publish=["my-subject"])

    result = run("pub.py", "--creds", creds, "--subject", "other", env=broker.env())

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("pub.py", ["--count", "0", "x"], "argument --count: must be a positive number, not '0'"),
        ("sub.py", ["--count", "0"], "argument --count: must be a positive number, not '0'"),
        ("sub.py", ["--count", "two"], "argument --count: must be a positive number, not 'two'"),
        (
            "pub.py",
            ["-H", "Example", "x"],
            "argument -H/--header: must be KEY=VALUE, a KEY of letters, digits or "
            "-_.!#$%&'*+^`|~ and a VALUE on one line, not 'Example'",
        ),
        (
            "pub.py",
            ["-H", "My Key=1", "x"],
            "argument -H/--header: must be KEY=VALUE, a KEY of letters, digits or "
            "-_.!#$%&'*+^`|~ and a VALUE on one line, not 'My Key=1'",
        ),
        ("pub.py", ["-H", "Example=True"], "-H needs a MESSAGE to go with"),
        ("pub.py", ["--timeout", "-1"], "argument --timeout: must be a positive number, not '-1'"),
        ("pub.py", ["--bogus"], "unrecognized arguments: --bogus"),
        (
            "pub.py",
            ["hello", "world"],
            'MESSAGE is one argument, not 2: quote a message with spaces, as in "hello world"',
        ),
        (
            "pub.py",
            ["-H", "Kind=a", "-H", "Kind=b", "x"],
            "argument -H/--header: Kind given twice: nats-py sends one value per header, so give each KEY once",
        ),
        ("sub.py", ["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_are_a_usage_error(script, args, message, run):
    result = run(script, *args, env={})

    assert_usage_error(result, script, message)


# TLS, as Scaleway does it: the URL says nats://, the server requires TLS, the client verifies it.


@BOTH
def test_an_untrusted_server_certificate_points_at_NATS_CA(script, tls_broker, run):
    env = tls_broker.env()
    del env["NATS_CA"]  # only the system's CAs, which do not know the local broker's CA

    result = run(script, env=env, timeout=10)

    assert_error(
        result,
        f"{script}: error: certificate verification failed for {tls_broker.url}: "
        "unable to get local issuer certificate; "
        "if the server uses a private CA, give it with --tlsca or NATS_CA",
    )
    assert result.seconds < 5, "retried a certificate that cannot be trusted"


@BOTH
def test_a_certificate_from_another_ca_than_NATS_CA_says_the_exports_may_be_the_other_brokers(script, make_broker, run):
    single, cluster = make_broker(tls=True), make_broker(tls=True)  # each local broker has a CA of its own

    result = run(script, env=single.env(NATS_CA=cluster.ca), timeout=10)

    assert_error(
        result,
        f"{script}: error: certificate verification failed for {single.url}: unable to get local issuer certificate; "
        f"the CA in {cluster.ca} (--tlsca or NATS_CA) did not sign it: the exports may be from the other local broker "
        "(single or --cluster); paste those of the one that runs",
    )


@BOTH
def test_a_missing_ca_file_is_named(script, tls_broker, run):
    result = run(script, "--tlsca", "/nonexistent/ca.pem", env=tls_broker.env())

    assert_error(
        result,
        f"{script}: error: cannot use CA file /nonexistent/ca.pem (--tlsca or NATS_CA): No such file or directory",
        code=2,
    )


def test_a_ca_file_that_is_not_a_certificate_is_named(tls_broker, run):
    result = run("pub.py", "--tlsca", tls_broker.creds, env=tls_broker.env())

    assert_error(result, f"pub.py: error: cannot use CA file {tls_broker.creds} (--tlsca or NATS_CA): ", ..., code=2)


def test_a_certificate_for_another_host_name_is_a_mismatch(make_broker, run):
    broker = make_broker(tls=True, tls_names=("nats.example.test",))

    result = run("pub.py", env=broker.env(), timeout=10)

    assert_error(
        result,
        f"pub.py: error: certificate verification failed for {broker.url}: "
        "IP address mismatch, certificate is not valid for '127.0.0.1'.; "
        "connect with a host name the certificate was issued for",
    )


@BOTH
def test_a_huge_creds_file_is_refused_without_reading_it_whole(script, run):
    result = run(script, "--creds", "/dev/zero", "-s", "nats://127.0.0.1:1", env=clean_env())

    assert_error(
        result,
        f"{script}: error: credentials file /dev/zero is too large for a creds file (over 64 KB); {GET_ONE}",
        code=2,
    )


@BOTH
@pytest.mark.parametrize("url", ["ws://127.0.0.1:8080", "wss://127.0.0.1:443", "http://127.0.0.1:4222"])
def test_a_url_that_is_not_nats_is_refused_at_once_naming_the_schemes_that_work(script, url, run):
    result = run(script, "-s", f"nats://127.0.0.1:4222,{url}", env=clean_env())

    assert_usage_error(
        result,
        script,
        f"argument -s/--server: '{url}' (from -s or NATS_URL): {url.split(':')[0]}:// is not "
        "supported here; use nats://HOST:PORT or tls://HOST:PORT",
    )
