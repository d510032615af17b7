#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["nats-py[nkeys]>=2.16,<3"]
# ///
"""Publish messages to a subject on Scaleway Messaging and Queuing (NATS).

Usage:
    python3 pub.py                          # the tutorial's two messages on 'my-subject'
    python3 pub.py "hello"                  # one message of your own
    python3 pub.py --count 1000 -H Example=True "hello"
    python3 pub.py -s nats://127.0.0.1:4222 --creds nats.creds --subject orders.new "hello"
    python3 pub.py --stream orders "hello"  # stored in the JetStream stream 'orders' until read

Connection options: -s/--server (env NATS_URL), --creds (env NATS_CREDS), --tlsca (env NATS_CA),
--timeout, --subject. Run `python3 pub.py --help` for all of them.
"""

import sys

try:
    import argparse
    import asyncio
    import contextlib
    import errno
    import itertools
    import json
    import logging
    import os
    import re
    import signal
    import socket
    import ssl
    import threading
    import time

    import nats
    import nkeys  # noqa: F401  (nats-py signs in with a .creds file through it)
    from nats.aio.client import RawCredentials
except ImportError as missing:
    sys.exit(
        f"pub.py: error: {sys.executable} cannot import {missing.name}; activate .venv (see the README) "
        f"or install nats-py: {sys.executable} -m pip install 'nats-py[nkeys]'"
    )


async def main(args, stop):
    """Connect, publish, make sure the server has it all, disconnect. stop: set by Ctrl+C or by a failure."""
    tutorial, sent = messages(args), 0
    total = len(tutorial) * args.count

    async def disconnected():
        # Core NATS keeps no copy: what sat in the socket when the connection dropped is gone. So stop, and say so.
        # (With --stream, JetStream acknowledges each message: pub.py rides through, and sends the rest again.)
        if not (args.stream or stop.is_set() or nc.is_closed):  # (closed for good: close() says why)
            stop.report(Failure(LOST.format(sent, total - sent)))

    # The server's URL and the .creds file that proves who you are; connect() (in the block at the end) adds TLS,
    # reconnection, and the table that says what each failure means.
    nc = nats.NATS()
    await connect(nc, args, stop, disconnected_cb=disconnected)
    stop.catch_signals()  # Ctrl+C stops publishing
    print(f"Connected to NATS at {address(nc)}...")

    check_size(tutorial, nc)
    try:
        if args.stream:
            sent = await publish_to_stream(nc, args, stop, tutorial, total)  # JetStream: see below
        else:

            async def publish_all():
                nonlocal sent
                for data, headers in itertools.islice(itertools.cycle(tutorial), min(total, sys.maxsize)):  # its limit
                    if stop.is_set():  # (nats-py ignores a cancel while it waits for room to send)
                        break
                    await nc.publish(args.subject, data, headers=headers)  # only buffers, while there is room
                    sent += 1

            await unless_stopped(stop, publish_all())  # Ctrl+C, or a closed connection, ends it at once
            # flush() is a round trip: when the server answers, it has received everything before it.
            await nc.flush(args.timeout)
            # A refusal can arrive just after that answer: one more round trip before claiming success.
            await nc.flush(args.timeout)
            # While nats-py reconnects, flush() returns at once: it proves nothing (nor after the server closed).
            if not (nc.is_connected or nc.is_closed):
                raise Failure(LOST.format(sent, 0))
    finally:
        stop.set()  # from here on, pub.py closes the connection itself
        await close(nc, stop)
    if stop.failure:
        raise stop.failure
    where = f"'{args.subject}'" + (f" (stream {args.stream})" if args.stream else "")
    if stop.signal:
        raise Failure(
            f"interrupted: {sent} of {total} messages published to {where} "
            f"and confirmed by the server; the others were not {'confirmed' if args.stream else 'sent'}",
            128 + stop.signal,
        )
    print(f"Published {total} message{'s' * (total != 1)} to {where}")


LOST = (
    "the connection to the server was lost while publishing: of the {} messages published before, some may not "
    "have reached it, and the other {} were not sent"
)


async def publish_to_stream(nc, args, stop, tutorial, total):
    """JetStream: the stream stores each message, then acknowledges it (a PubAck, JSON) to its reply subject. Up to
    IN_FLIGHT messages await theirs at once, as the NATS CLI publishes. One not acknowledged after ACK_WAIT s (an
    election, a lost connection) or refused for a moment is sent again with the same Nats-Msg-Id: if a copy was
    stored, the stream knows the ID (for 2 minutes) and keeps one. Returns how many were confirmed stored."""
    outage = Outage(f"stream {args.stream}", stop, PATIENCE)
    await ensure_stream(nc, args, outage)
    run, inbox, answered = os.urandom(8).hex(), nc.new_inbox(), time.monotonic()  # run: in this run's message IDs
    due, refused, wake, confirmed, sent = {}, [], asyncio.Event(), 0, 0  # due: each one in flight -> when to resend

    async def acknowledged(msg):  # the stream's answer to message n
        nonlocal confirmed, answered
        n = int(msg.subject.rpartition(".")[2])
        if n not in due or not msg.data:  # no data: a status (503, no stream listens there now): sent again later
            return  # (not due: the second answer to a message sent twice, counted once)
        error = b'"error":' in msg.data and json.loads(msg.data)["error"]  # the JSON is read whole for an error only
        if not error:
            confirmed, answered = confirmed + 1, time.monotonic()
            outage.ended()
        elif rides(e := nats.js.errors.APIError(**error)):
            outage.began(e)  # still due: sent again once its ACK_WAIT is over
            return
        else:
            refused.append(e)
        del due[n]
        wake.set()

    await nc.subscribe(f"{inbox}.*", cb=acknowledged)
    while (sent < total or due) and not (stop.is_set() or refused) and time.monotonic() - answered < PATIENCE:
        now = time.monotonic()
        late = list(itertools.takewhile(lambda n, now=now: due[n] < now, due))  # due is in order: late ones first
        new = range(sent, min(total, sent + IN_FLIGHT - len(due)))  # then as many new ones as there is room for
        if late and now - answered > ACK_WAIT:  # (late ones while others are acknowledged: lost in a cut, no outage)
            outage.began(nats.errors.TimeoutError(), since=answered)
        sent = new.stop
        wake.clear()
        for n in [*late, *new]:
            if nc.is_closed:  # for good (the script stops, saying why): this one and the next were not sent
                sent = max(new.start, n)
                break
            due.pop(n, None)  # (sent again, it becomes the last one due)
            due[n] = now + ACK_WAIT
            data, headers = tutorial[n % len(tutorial)]
            try:
                await nc.publish(args.subject, data, f"{inbox}.{n}", {**(headers or {}), "Nats-Msg-Id": f"{run}-{n}"})
            except nats.errors.OutboundBufferLimitError:
                pass  # reconnecting, with nats-py's buffer full: sent again after ACK_WAIT
        with contextlib.suppress(asyncio.TimeoutError):  # until an acknowledgement comes
            await asyncio.wait_for(wake.wait(), 0.5)
    deadline = time.monotonic() + (1 if stop.is_set() else ACK_WAIT)  # the answers to those still in flight
    while due and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    failed = refused[0] if refused else stop.failure if isinstance(stop.failure, Closed) else None  # (for good)
    if failed or confirmed < total and not stop.is_set():
        why = meaning(failed, args)[1] if failed else f"stream {args.stream} did not answer for {PATIENCE} s"
        maybe = f", {len(due)} may be (they were not acknowledged)" if due else ""
        unsent = total - confirmed - len(due)
        counts = f"{confirmed} of {total} messages were confirmed stored{maybe} and {unsent} were not"
        stop.failure = Failure(f"{why}; {counts}")  # what run() tells: the failure, with the counts
        raise stop.failure
    return confirmed


PATIENCE = 30  # seconds without any acknowledgement before pub.py gives up; an election takes a few
IN_FLIGHT = 4000  # messages awaiting their acknowledgement at once (as in nats.go)
ACK_WAIT = 5  # seconds before a message without an acknowledgement is sent again


def messages(args):
    """MESSAGE with the -H headers, or else the tutorial's two messages."""
    if args.message is not None:
        # The bytes given on the command line, as they are (surrogateescape keeps any that are not UTF-8).
        return [(args.message.encode(errors="surrogateescape"), dict(args.header) or None)]
    return [
        (b"This is a simple message with some datas", None),
        (b"This is still a simple message but with some headers inside", {"Example": "True", "RandomHeaders": "True"}),
    ]


def check_size(tutorial, nc):
    """Over max_payload, the server refuses a message and disconnects: count the headers too, as it does."""
    for data, headers in tutorial:
        header_block = [b"NATS/1.0", *(f"{k}: {v}".encode() for k, v in headers.items()), b"", b""] if headers else []
        if len(data) + len(b"\r\n".join(header_block)) > nc.max_payload:
            limit = f"{nc.max_payload} bytes with the headers (max_payload; MnQ's quota: 512 KB)"
            raise Failure(f"message too large: the server accepts at most {limit}")


def header(text):
    key, equals, value = text.partition("=")
    if not equals or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", key) or re.search(r"[\r\n]", value):
        raise argparse.ArgumentTypeError(
            f"must be KEY=VALUE, a KEY of letters, digits or -_.!#$%&'*+^`|~ and a VALUE on one line, not {text!r}"
        )
    return key, value


def parse_args():
    parser = add_connection_flags(argparse.ArgumentParser(prog="pub.py", description="Publish messages to NATS."))
    add = parser.add_argument
    add("message", nargs="?", help="the message, one argument: quote one with spaces (default: the tutorial's two)")
    add("more", nargs="*", help=argparse.SUPPRESS)  # to say what to do with a second word
    add("--count", type=positive(int), default=1, help="publish it this many times (default: 1)")
    add("-H", "--header", type=header, action="append", default=[], metavar="KEY=VALUE", help="add a header; repeat")
    args = parsed(parser)
    keys = [key for key, _ in args.header]
    if args.more:
        parser.error(
            f"MESSAGE is one argument, not {1 + len(args.more)}: quote a message with spaces, "
            f'as in "{" ".join([args.message, *args.more])}"'
        )
    if len(set(keys)) < len(keys):
        parser.error(
            f"argument -H/--header: {next(k for k in keys if keys.count(k) > 1)} given twice: nats-py sends "
            "one value per header, so give each KEY once"
        )
    if args.header and args.message is None:
        parser.error("-H needs a MESSAGE to go with")
    if {"*", ">"} & set(args.subject.split(".")):
        parser.error(
            f"argument --subject: cannot publish to {args.subject!r}: * and > are wildcards, which "
            "only subscribers use; name one subject"
        )
    return args


# --- Connecting, stopping, and what each failure means: the same block in pub.py and sub.py ---------------------
SCALEWAY_FR_PAR = "nats://nats.mnq.fr-par.scaleway.com:4222"
PROG = os.path.basename(sys.argv[0])
GRACE = 5  # seconds that stopping may take after Ctrl+C, before the script exits anyway
GET_CREDS = "get one with scripts/create-credentials.sh (Scaleway) or scripts/local-broker.sh"
CONNECT, CHECK = "could not connect to {where}", "; check --server or NATS_URL"
CERT = "certificate verification failed for {where}: {e.verify_message}; "
CA = "if the server uses a private CA, give it with --tlsca or NATS_CA"
OTHER_CA = "the CA in {} (--tlsca or NATS_CA) did not sign it: the exports may be from the other local broker (single "
OTHER_CA += "or --cluster); paste those of the one that runs"
DELETED = " was deleted while {prog} was reading it"
RIDE, WARN, STOP, REJECTED, UNREACHABLE = "ride", "warn", "stop", "rejected", "unreachable"


class Failure(Exception):
    def __init__(self, message, code=1):  # a failure put in words by the script; code 2: bad configuration
        super().__init__(message)
        self.code = code


class Closed(Exception): ...  # the server closed the connection for good (nats-py does not reconnect): its reason


class NoAnswer(Exception): ...  # the first connection did not succeed within --timeout: what the last try met


# What any failure means: the first row whose class matches, and whose clue (a regular expression) is found in the
# exception's text in lower case, decides. RIDE: wait it out (nats-py reconnects by itself; a JetStream request is
# sent again). WARN: ride, and tell once. STOP: end the script with the row's line. UNREACHABLE and REJECTED stop
# the first connection; while reconnecting, an UNREACHABLE server may be restarting (ride), and a REJECTED one is
# told at once and stops the script the third time in a row (a restart with a new certificate or account).
FAILURES = [
    (ssl.SSLCertVerificationError, "mismatch", REJECTED,
     CERT + "connect with a host name the certificate was issued for"),
    (ssl.SSLCertVerificationError, "", REJECTED, CERT + "{ca}"),
    (nats.errors.Error, "authorization violation", REJECTED, "authorization failed at {where}: the server rejected "
     "the credentials in {args.creds}"),
    (ConnectionRefusedError, "", UNREACHABLE, CONNECT + ": connection refused, nothing listens there" + CHECK),
    (socket.gaierror, "", UNREACHABLE, CONNECT + ": unknown host ({e.strerror})" + CHECK),
    (OSError, "unreachable", UNREACHABLE, CONNECT + ": {e.strerror}" + CHECK),
    (NoAnswer, "", STOP, CONNECT + " within {args.timeout:g} s ({e})" + CHECK),
    (Closed, "expired", STOP, "the server closed the connection: the credentials expired; " + GET_CREDS),
    (Closed, "revoked", STOP, "the server closed the connection: the credentials were revoked; " + GET_CREDS),
    (Closed, "maximum payload", STOP, "the server closed the connection: a message was over the account's size limit "
     "(maximum payload violation); publish smaller messages"),
    (Closed, "", STOP, "the server closed the connection: {e}"),
    (nats.errors.Error, r"permissions violation for publish to .\$js\.api\.", STOP, "permission denied: these "
     "credentials may not use JetStream (publish to $JS.API.>); use credentials that may, or leave out --stream"),
    (nats.errors.Error, "permissions violation", STOP, "permission denied: these credentials may not {denied}"),
    (nats.errors.SlowConsumerError, "", WARN, "messages came faster than they were printed: nats-py dropped some"),
    (nats.js.errors.APIError, "err_code=10039|code=none err_code=none", STOP, "JetStream is not enabled for this "
     "account at {where}; publish and subscribe without --stream"),
    # No leader for a moment (an election): a 503 without an error code, unavailable, not leader, offline, in process.
    (nats.js.errors.APIError, r"code=503 err_code=none|err_code=(10008|10009|10118|10119|10158)\b", RIDE,
     "stream {args.stream} is not answering ({reason})"),
    (nats.js.errors.NotFoundError, r"err_code=10059\b", STOP, "stream {args.stream}" + DELETED),
    (nats.js.errors.NotFoundError, r"err_code=10014\b", STOP, "consumer {consumer}" + DELETED),
    # MnQ's quotas, which the local broker has too.
    (nats.js.errors.APIError, r"err_code=(10002|10047)\b", STOP, "stream {args.stream}: the account's storage is full "
     "({reason}; MnQ's quota: 300 MB per account, each replica counted); delete streams you no longer need"),
    (nats.js.errors.APIError, r"err_code=10027\b", STOP, "stream {args.stream}: {reason} (MnQ's quota: 50 streams per "
     "account); delete streams you no longer need"),
    (nats.js.errors.APIError, r"err_code=10026\b", STOP, "stream {args.stream}: {reason} (MnQ's quota: 50 consumers "
     "per stream); delete those you no longer need (sub.py's own, without --durable, go 5 min after it stops)"),
    (nats.js.errors.APIError, "", STOP, "stream {args.stream}: the server refused: {reason}"),
    # A lost connection, or a request without an answer in time: nats-py reconnects; the script asks again.
    ((OSError, asyncio.TimeoutError, nats.errors.UnexpectedEOF, nats.errors.StaleConnectionError,
      nats.errors.NoRespondersError, nats.errors.ConnectionReconnectingError),
     "", RIDE, "the server did not answer ({reason})"),
    (nats.errors.Error, "^nats: '", RIDE, "the server said {reason}"),  # an -ERR while connecting: try again
    (Exception, "", STOP, "{reason}"),
]  # fmt: skip


def meaning(e, args):
    """What to do about any exception (RIDE, STOP...), and what to say: its row of FAILURES, filled in."""
    _, _, action, text = row(e)
    denied = str(e).split(" for ")[-1].replace("subscription", "subscribe").replace('"', "'")
    denied = denied.replace(args.subject.lower(), args.subject)  # nats-py lowers the -ERR: the subject's own case
    ca = OTHER_CA.format(escaped(args.tlsca)) if args.tlsca else CA  # a CA was given: the wrong one
    fields = dict(e=e, args=args, where=shown(args.server), reason=reason(e), prog=PROG, denied=denied, ca=ca)
    return action, text.format(consumer=getattr(args, "durable", None) or "(without --durable)", **fields)


def row(e):
    """The first row of FAILURES whose class matches e and whose clue is found in e's text, in lower case."""
    return next(row for row in FAILURES if isinstance(e, row[0]) and re.search(row[1], str(e).lower()))


def rides(e):
    return row(e)[2] == RIDE  # wait, and try again


def reason(e):
    """An exception in words: a JetStream refusal's description (or its codes), never None or a class name."""
    if isinstance(e, nats.js.errors.APIError):
        return e.description or f"code {e.code}, err_code {e.err_code}"
    return str(e) or "no answer in time"


def add_connection_flags(parser):
    """The NATS CLI's options and variables, so one environment serves both."""
    env, add = os.environ.get, parser.add_argument
    server = env("NATS_URL") or SCALEWAY_FR_PAR
    add("-s", "--server", metavar="URL", type=nats_urls, default=server, help="env NATS_URL; default: Scaleway fr-par")
    add("--creds", default=env("NATS_CREDS") or "nats.creds", help="credentials file (env NATS_CREDS)")
    add("--tlsca", default=env("NATS_CA"), help="CA certificates to verify the server with (env NATS_CA)")
    add("--timeout", type=positive(float), default=10.0, help="seconds to wait for the first connection (default: 10)")
    add(
        "--subject", type=valid(str, TOKENS, SUBJECT), help="subject (default: my-subject; with --stream S: S.messages)"
    )
    add("--stream", type=valid(str, NAMED, NAME), help="JetStream: this stream keeps the messages (made if missing)")
    add("--replicas", type=int, choices=range(1, 6), metavar="{1..5}", help="copies of a new stream (3 on a cluster)")
    return parser


def parsed(parser):  # parse_args(); --stream S's subject is S.messages by default, not my-subject (MnQ bills streams)
    args = parser.parse_args()
    if args.replicas and not args.stream:
        parser.error("--replicas needs --stream: it is the number of copies of a new stream")
    args.subject = args.subject or (f"{args.stream}.messages" if args.stream else "my-subject")
    return args


async def connect(nc, args, stop, **callbacks):
    """nc.connect() with the .creds file, TLS and reconnection (forever), its failures judged by FAILURES: the first
    connection ends once every server gave an answer that trying again will not change, or after --timeout."""
    first, tries, rejected, told = True, [], [], set()  # rejected: the reconnect count at each rejection

    async def error_cb(e):
        action, text = meaning(e, args)
        if first:
            tries.append(action)
            if len(tries) >= len(args.server.split(",")) and RIDE not in tries[-len(args.server.split(",")) :]:
                raise e  # ends nats-py's tries of the first connection
        elif action == REJECTED:
            rejected.append(nc.stats["reconnects"])
            if rejected.count(rejected[-1]) == 1:
                warn(f"{text}; retrying")
            if rejected.count(rejected[-1]) == 3:
                stop.report(e)
        elif action == STOP:
            stop.report(e)
        elif action == WARN and text not in told:
            told.add(text)
            warn(text)

    # Closed for good by the server (expired or revoked credentials, a limit): nats-py does not reconnect. Its
    # closed_cb is not called when its own close() fails on the broken connection: watch the status instead.
    async def closed_for_good():
        while not nc.is_closed:
            await asyncio.sleep(0.5)
        if not stop.is_set():
            await close(nc, stop)  # which says why

    try:  # (None: nats-py verifies the server against the system's CAs when it requires TLS)
        tls = ssl.create_default_context(cafile=args.tlsca) if args.tlsca else None
    except (OSError, ssl.SSLError) as e:
        raise Failure(f"cannot use CA file {args.tlsca} (--tlsca or NATS_CA): {e.strerror or e}", 2) from None
    # A PING every 10 s, given up after 2 without an answer: a network gone silent (no reset, no close) is noticed
    # within about 30 s rather than 4 to 6 minutes. A publish waits at most --timeout for room to send.
    options = dict(ping_interval=10, max_outstanding_pings=2, flush_timeout=args.timeout, tls=tls, **callbacks)
    options.update(max_reconnect_attempts=-1, reconnect_time_wait=1, error_cb=error_cb)
    try:  # bounded: nats-py would try an unreachable server for about two minutes
        await asyncio.wait_for(
            nc.connect(args.server.split(","), user_credentials=read_creds(args.creds), **options), args.timeout
        )
    except asyncio.TimeoutError:
        raise NoAnswer(str(nc.last_error or "") or "no answer") from None
    first, stop.nc = False, nc  # (run() closes it if main() fails)
    stop.watch = asyncio.ensure_future(closed_for_good())  # (kept: asyncio holds a running task only weakly)


def read_creds(path):
    """The .creds file, checked: nats-py can spin forever on a malformed one, and fails on CRLF."""
    exports = "NATS_URL and NATS_CREDS are not set in this terminal: for the local broker, paste the three export "
    exports += "lines it printed; for Scaleway, get a file with scripts/create-credentials.sh"
    try:
        with open(path, encoding="utf-8") as f:  # reads Windows (CRLF) line endings as \n
            text = f.read(64 * 1024 + 1)  # a real one is under 2 KB: never read a huge file (or /dev/zero) whole
    except OSError as e:
        fix = GET_CREDS if os.environ.get("NATS_URL") or os.environ.get("NATS_CREDS") else exports
        raise Failure(f"cannot read credentials file {path} (--creds or NATS_CREDS): {e.strerror}; {fix}", 2) from None
    except UnicodeDecodeError:
        raise Failure(f"credentials file {path} is not a text file (UTF-8); {GET_CREDS}", 2) from None
    if len(text) > 64 * 1024:
        raise Failure(f"credentials file {path} is too large for a creds file (over 64 KB); {GET_CREDS}", 2)
    for block, body in (("NATS USER JWT", r"[\w.-]+"), ("USER NKEY SEED", r"SU[A-Z2-7]+")):
        if not re.search(rf"-----BEGIN {block}-----\n{body}\n------END {block}------", text):
            raise Failure(f"credentials file {path} is malformed: no {block} block; {GET_CREDS}", 2)
    return RawCredentials(text)


async def close(nc, stop):
    # Closed already, and not by the script: the server closed it for good (nats-py keeps its reason in last_error).
    if nc.is_closed and not stop.closing:
        stop.report(Closed(str(nc.last_error or "no reason given").removeprefix("nats: ")))
    stop.closing = True
    with contextlib.suppress(Exception):  # after a cut, close() can fail on a transport that is gone
        await asyncio.wait_for(nc.close(), 2)  # after a failed TLS handshake, it can wait forever


class Stop(asyncio.Event):
    """Set by Ctrl+C or SIGTERM, by a failure or by the script; a second signal, or GRACE s without stopping, exits."""

    signal = failure = nc = watch = None  # the signal that set it; the exception that did (run() says what it means)
    closing = False  # the script closes the connection itself (see close())

    def report(self, e):
        self.failure = self.failure or e
        self.set()

    def catch_signals(self):
        loop = asyncio.get_running_loop()

        def handler(signum, frame):
            if self.signal or loop.is_closed():
                os._exit(128 + signum)  # the second Ctrl+C: no more waiting
            self.signal = signum
            loop.call_soon_threadsafe(self.set)
            threading.Thread(target=give_up, args=(signum,), daemon=True).start()

        def give_up(signum):
            time.sleep(GRACE)
            warn(f"could not stop cleanly within {GRACE} s; exiting anyway (what was not yet printed or sent is lost)")
            os._exit(128 + signum)

        for sig in (signal.SIGINT, signal.SIGTERM):  # not loop.add_signal_handler: Windows' loops lack it
            signal.signal(sig, handler)


def run(main, args):
    """asyncio.run(main(args, stop)); the exception that set stop, or else the one main() ended with, is told."""
    # asyncio warns "returning true from eof_received()" each time a TLS peer closes: harmless noise.
    # So is the failure of nats-py's own close() on a connection the server already closed for good.
    logging.getLogger("asyncio").addFilter(lambda r: not re.search("eof_received|Client._close", r.getMessage()))
    # Print any text: UTF-8 when redirected (Windows would pick cp1252), \-escapes where a terminal cannot.
    sys.stdout.reconfigure(errors="backslashreplace", **({} if sys.stdout.isatty() else {"encoding": "utf-8"}))

    async def stoppable():
        stop = Stop()  # (made in the loop: on Python 3.9, an Event belongs to the loop it was made in)
        try:
            await main(args, stop)
        except Exception as e:
            if stop.nc:
                await close(stop.nc, stop)  # (if the server closed it for good, that is what stopped the script)
            raise (stop.failure or e) from None  # what stopped the script, rather than what that made fail

    try:
        asyncio.run(stoppable())
        sys.stdout.flush()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if isinstance(e, OSError) and e.errno in (errno.EPIPE, errno.EINVAL, errno.ENOSPC, errno.EIO, errno.EFBIG):
            output_failed(e)
        text, code = (str(e), e.code) if isinstance(e, Failure) else (meaning(e, args)[1], 1)
        print(f"{PROG}: error: {escaped(text)}", file=sys.stderr)
        sys.exit(code)


def output_failed(e):
    """stdout is gone: its reader left (| head: EPIPE, or EINVAL on Windows) or the disk is full. Stop at once."""
    if e.errno not in (errno.EPIPE, errno.EINVAL):
        print(f"{PROG}: error: cannot write the output: {e.strerror}", file=sys.stderr, flush=True)
    os._exit(0 if e.errno in (errno.EPIPE, errno.EINVAL) else 1)


def warn(text):
    print(f"{PROG}: warning: {escaped(str(text))}", file=sys.stderr, flush=True)


def escaped(text):
    r"""Other people's text, what cannot be printed \-escaped (control characters, line breaks, bidirectional
    marks): it cannot fake a line, reorder one, or command the terminal."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(urls):
    """URLs as they may be printed: without a user:password@ in them."""
    return escaped(re.sub(r"(?<=//)[^/@,]*@", "***@", urls))


def address(nc):
    """host:port of the server nc is connected to (it may be one the cluster announced)."""
    url = nc.connected_url  # None when that connection is already lost: nats-py is reconnecting
    return escaped(f"{url.hostname}:{url.port}") if url else "(lost, reconnecting)"


def valid(kind, ok, problem):
    """An argparse type: kind(text), if text is UTF-8 and ok() with it; else the problem, naming the text."""

    def parse(text):
        try:
            text.encode()
            if ok(kind(text)):
                return kind(text)
        except UnicodeEncodeError:  # bytes from the command line that are not UTF-8
            raise argparse.ArgumentTypeError(f"{text!r} is not valid UTF-8") from None
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(problem.format(text))

    return parse


def positive(kind):
    return valid(kind, lambda n: n > 0, "must be a positive number, not {!r}")


def nats_urls(text):
    """nats:// and tls:// URLs (nats-py takes http:// for a host named http, and tries ws:// for all of --timeout)."""
    for url in valid(str, str, "")(text).split(","):
        scheme = url.split("://")[0].lower() if "://" in url else "nats"
        if scheme not in ("nats", "tls"):
            raise argparse.ArgumentTypeError(
                f"{shown(url)!r} (from -s or NATS_URL): {scheme}:// is not supported here; use nats://HOST:PORT "
                "or tls://HOST:PORT"
            )
    return text


SUBJECT = "not a valid subject: {!r} (tokens between single dots, no spaces; > only as the last token)"
NAME = "not a valid name: {!r} (no spaces, no . * > / or \\)"  # a stream or consumer
TOKENS = re.compile(r"(?!(.*\.)?>\.)[^\s\x00-\x1f\x7f.]+(\.[^\s\x00-\x1f\x7f.]+)*").fullmatch  # > only last
NAMED = re.compile(r"[^\s.*>/\\\x00-\x1f\x7f]{1,255}").fullmatch  # no spaces, dots, wildcards, path separators


# JetStream: streams keep messages until a consumer has read them. On a cluster (MnQ is one), each stream and
# consumer has a leader node; while a new one is elected (a few seconds after a node is lost), they do not answer.
async def ensure_stream(nc, args, outage):
    """The stream that captures args.subject, which the server names: args.stream, or made as args.stream with file
    storage (MnQ's only kind) and --replicas copies (default: 3 on a cluster, whose INFO names it; else 1)."""
    js = nc.jetstream()
    try:
        owner = await outage.retry(lambda: js.find_stream_name_by_subject(args.subject))
    except nats.js.errors.NotFoundError:
        owner = None
    if owner == args.stream:
        return
    if owner:  # a message is stored in one stream only
        fix = f"use --stream {owner}, or another --subject"
        raise Failure(f"stream {owner} already captures '{args.subject}'; {fix}", 2)
    replicas = args.replicas or (3 if nc._server_info.get("cluster") else 1)
    new = dict(name=args.stream, subjects=[args.subject], storage="file", num_replicas=replicas)
    try:  # (made twice, by two scripts at once or by a retry here, the same stream is no error)
        await outage.retry(lambda: js.add_stream(**new))
    except nats.js.errors.BadRequestError as e:
        if e.err_code != 10058:  # 10058: the stream exists, for other subjects
            raise
        subjects = ", ".join(map(repr, (await outage.retry(lambda: js.stream_info(args.stream))).config.subjects))
        fix = f"its subjects are {subjects}; use one of them with --subject, or another --stream"
        raise Failure(f"stream {args.stream} does not capture '{args.subject}': {fix}", 2) from None


async def unless_stopped(stop, call):
    """await call, unless stop is set first (Ctrl+C, a failure): then cancel it. A call that waits on a server (for
    room to send, for an answer) is not waited for once the script stops."""
    task, stopped = asyncio.ensure_future(call), asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    task.cancel()  # (if it is still running)
    with contextlib.suppress(asyncio.CancelledError):
        return await task


class Outage:
    """retry(call): call() again while FAILURES says to ride through what it raises, for up to patience seconds
    (None: until stop is set); one warning when an outage starts, one when it ends. Once stop is set, a call still
    waiting is cancelled (unless interrupt=False) and retry() raises what stopped the script."""

    def __init__(self, what, stop, patience=None, interrupt=True):
        self.what, self.stop, self.patience, self.interrupt = what, stop, patience, interrupt
        self.since = None  # when it started
        self.limit = f"for up to {patience} s" if patience else "until it answers"

    def began(self, e, since=None):  # since: when it went silent, if before now
        if self.since is None:
            self.since = since or time.monotonic()
            warn(f"{self.what} is not answering ({reason(e)}); trying again {self.limit}")

    def ended(self):
        if self.since is not None:
            warn(f"{self.what} is answering again after {time.monotonic() - self.since:.1f} s")
            self.since = None

    async def retry(self, call):
        first = time.monotonic()
        while True:
            try:
                result = await (unless_stopped(self.stop, call()) if self.interrupt else call())
                if self.interrupt and self.stop.is_set():
                    raise self.stop.failure or Failure(f"interrupted waiting for {self.what}", 128 + self.stop.signal)
                self.ended()
                return result
            except Exception as e:
                if not rides(e) or self.stop.is_set() or time.monotonic() - first >= (self.patience or 1e9):
                    raise
                self.began(e)
                await asyncio.sleep(0.5)


# --- End of the shared block ------------------------------------------------------------------------------------


if __name__ == "__main__":
    run(main, parse_args())
