#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["nats-py[nkeys]>=2.16,<3"]
# ///
"""Subscribe to a subject on Scaleway Messaging and Queuing (NATS) and print every message.

Usage:
    python3 sub.py                          # print messages on 'my-subject' until Ctrl+C
    python3 sub.py --count 10               # exit after 10 messages
    python3 sub.py --queue workers          # share the messages with other members of 'workers'
    python3 sub.py --subject 'orders.>'     # every subject that starts with 'orders.'
    python3 sub.py -s nats://127.0.0.1:4222 --creds nats.creds --subject orders
    python3 sub.py --stream orders --durable shipping   # JetStream: resume where 'shipping' stopped

Connection options: -s/--server (env NATS_URL), --creds (env NATS_CREDS), --tlsca (env NATS_CA),
--timeout, --subject. Run `python3 sub.py --help` for all of them.
"""

import sys

try:
    import argparse
    import asyncio
    import contextlib
    import errno
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
        f"sub.py: error: {sys.executable} cannot import {missing.name}; activate .venv (see the README) "
        f"or install nats-py: {sys.executable} -m pip install 'nats-py[nkeys]'"
    )


async def main(args, stop):  # stop: set by Ctrl+C, --count or a failure
    print("Connection")
    nc, repull = nats.NATS(), asyncio.Event()

    async def disconnected():  # once connected, nats-py reconnects by itself, forever: these two tell the user
        if not nc.is_closed:
            print("Disconnected from NATS, reconnecting...", flush=True)

    async def reconnected():
        print(f"Reconnected to NATS at {address(nc)}", flush=True)
        repull.set()  # a pull request (--stream) waits on the server it was sent to: send a new one
        if not args.stream:  # a stream kept them; core NATS keeps nothing for a subscriber that is away
            warn("messages published while sub.py was disconnected are lost (core NATS is at-most-once)")

    # The server's URL and .creds file; connect() (in the block at the end) adds TLS, reconnection, the failure table.
    await connect(nc, args, stop, disconnected_cb=disconnected, reconnected_cb=reconnected)
    print(f"Connected to NATS at {address(nc)}...")
    stop.catch_signals()  # from now on Ctrl+C and SIGTERM set stop; a second one exits at once
    received = 0

    async def on_message(msg):
        nonlocal received
        received += 1
        if received == args.count:
            stop.set()
        show(msg)

    print("Subscribing")
    if args.stream:
        # JetStream: a consumer of the stream, which remembers what was acknowledged (see below).
        sub = await stream_consumer(nc, args, stop)
    else:
        # In a queue group, the server hands each message to only one of the group's subscribers.
        sub = await nc.subscribe(args.subject, queue=args.queue, cb=on_message)
        if args.count:
            await sub.unsubscribe(limit=args.count)  # the server stops sending after that many
    await nc.flush()  # a round trip: the server now knows about the subscription
    print("Subscription OK", flush=True)

    if args.stream:
        await read_stream(sub, on_message, stop, repull, args)
    await stop.wait()
    if stop.failure:
        await close(nc, stop)
        raise stop.failure
    print("Disconnecting...", flush=True)
    if args.stream:
        await sub.unsubscribe()  # drain() would wait for an open pull subscription forever
    if nc.is_connected:
        # drain() unsubscribes, lets on_message finish what has already arrived, then closes.
        await nc.drain()
    else:
        await close(nc, stop)  # the server is away: there is nothing to drain
    print("Disconnection OK")


async def stream_consumer(nc, args, stop):
    """A pull consumer of the stream: durable (it resumes where it stopped, and several sub.py with the same
    --durable share the messages) or, without --durable, one of its own that replays the stream."""
    outage = Outage(f"stream {args.stream}", stop)  # while it has no leader (an election), keep trying
    await ensure_stream(nc, args, outage)
    js = nc.jetstream()
    name, config = args.durable, None
    if args.durable:
        await check_durable(js, args, outage)
    else:  # not an ephemeral consumer: that lives on one node, and dies with it. Named, it has as many copies as
        # the stream; the server deletes it once nobody reads it for INACTIVE seconds.
        name, config = f"sub-{os.urandom(4).hex()}", nats.js.api.ConsumerConfig(inactive_threshold=INACTIVE)
    return await outage.retry(lambda: js.pull_subscribe(args.subject, durable=name, stream=args.stream, config=config))


async def check_durable(js, args, outage):
    """A durable consumer keeps the subject it was created with: with another --subject, it would print that
    subject's messages, not the ones asked for. Also say if it has as many messages unacknowledged as it may."""
    try:
        info = await outage.retry(lambda: js.consumer_info(args.stream, args.durable))
    except nats.js.errors.NotFoundError:
        return  # a new one: pull_subscribe() creates it for --subject
    config = info.config
    if config.max_ack_pending and 0 < config.max_ack_pending <= info.num_ack_pending:
        # Handed out to consumers that died before acknowledging: the server waits for those first.
        warn(
            f"consumer {args.durable} has {info.num_ack_pending} messages handed out and not acknowledged, its "
            f"limit (max_ack_pending): it gets no message until the server hands them out again, after the "
            f"ack wait ({config.ack_wait:g} s)"
        )
    subjects = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    if subjects != [args.subject]:
        reads = ", ".join(f"'{s}'" for s in subjects) or "every subject of the stream"
        fix = f"use --subject {subjects[0]}, or another --durable" if len(subjects) == 1 else "use another --durable"
        raise Failure(f"consumer {args.durable} of stream {args.stream} reads {reads}, not '{args.subject}'; {fix}", 2)


async def read_stream(consumer, on_message, stop, repull, args):
    """Fetch messages in batches; print each, then acknowledge it, until stopped."""
    what = f"consumer {args.durable} of stream {args.stream}" if args.durable else f"stream {args.stream}"
    outage = Outage(what, stop, interrupt=False)  # pull() stops by itself, to hand back what it fetched
    acknowledged, backlog, acks_sent_at = 0, False, time.monotonic()
    while not stop.is_set():
        wanted = min(BATCH, args.count - acknowledged) if args.count else BATCH
        messages = await outage.retry(lambda: pull(consumer, wanted, stop, repull, backlog))  # noqa: B023
        # Each message says how many more the consumer has for us: then the next pull is answered at once.
        backlog = bool(messages) and messages[-1].metadata.num_pending > 0
        for msg in messages:
            if stop.is_set():
                await msg.nak()  # fetched but not printed: the server hands it out again at once
                continue
            await on_message(msg)
            await msg.ack()  # only now, once printed: a message is never lost between the two
            acknowledged += 1
            if acknowledged % ACKS_AT_ONCE == 0 or time.monotonic() - acks_sent_at > 0.05:  # (a slow output)
                await asyncio.sleep(0)  # ack() only buffers: let nats-py send these now, not at the next fetch
                acks_sent_at = time.monotonic()


async def pull(consumer, wanted, stop, repull, backlog):
    """Up to wanted messages; [] after POLL seconds without any, or once stop or repull is set (with a backlog,
    the messages already on their way are taken then, to be handed back: cancelled, they would come back only
    after the ack wait).

    A long poll: the server answers as soon as a message comes, or after POLL seconds. MnQ counts each pull
    request as a message, so an idle sub.py sends one every POLL seconds rather than one a second."""
    repull.clear()
    delivered = consumer.delivered
    fetch = asyncio.ensure_future(consumer.fetch(wanted, timeout=POLL))
    interrupted = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(repull.wait())]
    await asyncio.wait({fetch, *interrupted}, return_when=asyncio.FIRST_COMPLETED)
    for waiting in interrupted:
        waiting.cancel()
    if not fetch.done() and (backlog or consumer.delivered != delivered):
        await asyncio.wait({fetch}, timeout=2)  # a batch is on its way: take it, to hand back what is not printed
    if not fetch.done():
        fetch.cancel()  # the pull request the server holds ends when it expires, or with the subscription
        await asyncio.wait({fetch})  # (on a closed connection, nats-py turns the cancel into ConnectionClosedError)
    try:
        return [] if fetch.cancelled() else fetch.result()
    except asyncio.TimeoutError:
        return []  # nothing new (or the pull was lost with its node): ask again
    except nats.js.errors.APIError:  # no leader for now (ride through it), or the consumer or its stream is gone
        await consumer.consumer_info()  # NotFoundError if it is gone: FAILURES says which
        # Else a 503: nats-py leaves out its code, which would read as "no responders" (no JetStream). Put it back.
        raise nats.js.errors.ServiceUnavailableError(code=503, description="no leader for now") from None


POLL = 20  # seconds a pull request waits on the server for a message
INACTIVE = 300  # seconds without a pull request before the server deletes the consumer made without --durable
BATCH = 256  # messages per fetch
ACKS_AT_ONCE = 32  # acknowledgements sent together (or after 50 ms): a crash leaves few printed, unacknowledged


def show(msg):
    """A message's two lines. Control characters and line breaks are escaped: a payload cannot fake
    a line, or send the terminal commands."""
    try:
        print(f"Received a message on '{escaped(msg.subject)}': {escaped(msg.data.decode(errors='backslashreplace'))}")
        # Keys as plain strings: nats-py gives a server's status description as an enum member (Header.DESCRIPTION).
        headers = {getattr(key, "value", key): value for key, value in msg.headers.items()} if msg.headers else None
        print(f"Headers maybe: {headers}", flush=True)
    except OSError as e:
        output_failed(e)


def parse_args():
    parser = add_connection_flags(argparse.ArgumentParser(prog="sub.py", description="Print messages from NATS."))
    parser.add_argument("--count", type=positive(int), help="exit after this many messages")
    queue = valid(str, re.compile(r"[^\s\x00-\x1f\x7f]*").fullmatch, "not a valid queue group name: {!r} (no spaces)")
    parser.add_argument(
        "--queue", type=queue, default="", help="join this queue group: each message goes to one member"
    )
    parser.add_argument(
        "--durable",
        type=valid(str, NAMED, NAME),
        help="with --stream: the consumer's name; it resumes after the last message acknowledged, "
        "and several sub.py with the same --durable share the messages",
    )
    args = parsed(parser)
    if args.durable and not args.stream:
        parser.error("--durable needs --stream: a durable consumer reads a JetStream stream")
    if args.stream and args.queue:
        parser.error(
            "--queue is for core NATS; with --stream, share the messages by giving several sub.py the same --durable"
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
