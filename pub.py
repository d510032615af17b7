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

try:  # Ctrl+C while Python loads these ends the script quietly (130), as at any other moment
    import argparse
    import asyncio
    import errno
    import itertools
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
except KeyboardInterrupt:
    sys.exit(130)


async def main(args):
    reported = []  # the server refuses a forbidden publish later, on its own: error_cb collects that here
    sent, lost = 0, []

    async def disconnected():
        # Core NATS keeps no copy: what sat in the socket when the connection dropped is gone, and no one can say
        # which messages those were. So do not reconnect and carry on: stop, and say so. (JetStream acknowledges
        # each message: with --stream, pub.py reconnects and sends again what was not acknowledged.)
        if not args.stream and not nc.is_closed:
            lost.append(sent)
            asyncio.ensure_future(close(nc))

    # The server's URL and the .creds file that proves who you are; connection_options() (at the end
    # of this file) adds TLS, reconnection and error handling.
    options, connected = connection_options(args, on_error=reported.append)
    nc = await connected(
        nats.connect(
            args.server.split(","), user_credentials=read_creds(args.creds), disconnected_cb=disconnected, **options
        )
    )
    stop = Stop()
    stop.catch_signals()  # Ctrl+C stops publishing
    print(f"Connected to NATS at {address(nc)}...")

    check_size(args, nc)
    total = len(messages(args)) * args.count
    batch = repeated(messages(args), args.count)
    try:
        if args.stream:
            sent = await publish_to_stream(nc, args, batch, total, stop)  # JetStream: see below
        else:
            for data, headers in batch:
                if stop.signal:
                    break
                await nc.publish(args.subject, data, headers=headers)  # only buffers: nothing is sent yet
                sent += 1
        # flush() is a round trip: when the server answers, it has received everything before it.
        await nc.flush(args.timeout)
        # A refusal can arrive just after that answer: one more round trip before claiming success.
        await nc.flush(args.timeout)
    except nats.js.errors.Error as e:
        raise Failure(why_jetstream_failed(e, args)) from None
    except nats.errors.Error as e:  # the server went away, or did not answer in time
        if not lost:  # a lost connection is told just below
            raise Failure(f"publishing to {shown(args.server)} failed: {e}") from None
    finally:
        await close(nc)
    if lost:
        raise Failure(
            f"the connection to the server was lost while publishing: of the {lost[0]} messages published "
            f"before, some may not have reached it, and the other {total - lost[0]} were not sent"
        )
    check_reported(args, reported)
    where = f"'{args.subject}'" + (f" (stream {args.stream})" if args.stream else "")
    if stop.signal:
        raise Failure(
            f"interrupted: {sent} of {total} messages published to {where} "
            f"and confirmed by the server; the others were not {'confirmed' if args.stream else 'sent'}",
            128 + stop.signal,
        )
    print(f"Published {total} message{'s' * (total != 1)} to {where}")


async def publish_to_stream(nc, args, batch, total, stop):
    """JetStream: the server stores each message in the stream, then acknowledges it (a PubAck).

    While the stream has no leader (an election on a cluster), a message is sent again until it is acknowledged,
    for up to PATIENCE seconds. It carries the same Nats-Msg-Id each time: if an earlier copy was stored and only
    its acknowledgement was lost, the stream recognises the ID (for its duplicate window, 2 minutes by default)
    and stores the message once."""
    outage = Outage(f"stream {args.stream}", PATIENCE, giving_up=lambda: stop.signal)
    try:
        await ensure_stream(nc, args, outage)
    except nats.errors.Error as e:
        if not unavailable(e):
            raise
        raise Failure(
            f"stream {args.stream} did not answer for {PATIENCE} s ({e or type(e).__name__}); nothing was published"
        ) from None
    js, run = nc.jetstream(), os.urandom(8).hex()  # run: makes this run's message IDs unlike any other run's
    confirmed = 0
    for start in range(0, total, WINDOW):
        if stop.signal:
            break
        window = [
            (data, {**(headers or {}), "Nats-Msg-Id": f"{run}-{n}"})
            for n, (data, headers) in enumerate(itertools.islice(batch, WINDOW), start)
        ]
        sent_at = time.monotonic()
        # A window of publishes in flight at once: one wait for many acknowledgements, not one per message.
        acks = await asyncio.gather(
            *(js.publish(args.subject, data, headers=headers) for data, headers in window), return_exceptions=True
        )
        await send_again_unanswered(js, args, window, acks, outage, sent_at)
        failed = [ack for ack in acks if isinstance(ack, Exception)]
        confirmed += len(acks) - len(failed)
        if failed and not stop.signal:
            raise Failure(not_all_stored(args, total, confirmed, failed))
    return confirmed


async def send_again_unanswered(js, args, window, acks, outage, sent_at):
    """Send again, with the same IDs, the messages the stream did not answer; their acks replace the errors."""
    again = [i for i, ack in enumerate(acks) if isinstance(ack, Exception) and unavailable(ack)]
    if again:
        outage.lost(acks[again[0]], sent_at)
        retried = await asyncio.gather(
            *(
                outage.retry(lambda message=window[i]: js.publish(args.subject, message[0], headers=message[1]))
                for i in again
            ),
            return_exceptions=True,
        )
        for i, ack in zip(again, retried):
            acks[i] = ack


def not_all_stored(args, total, confirmed, failed):
    """What is known when the stream refused messages, or did not answer: what it acknowledged is stored."""
    unconfirmed = [e for e in failed if unavailable(e)]
    if not unconfirmed:  # refused (a limit reached): those were not stored
        return (
            f"{total - confirmed} of {total} messages were not stored in stream {args.stream} "
            f"({failed[0] or type(failed[0]).__name__}); {confirmed} were"
        )
    refused = f", {len(failed) - len(unconfirmed)} refused" if len(failed) > len(unconfirmed) else ""
    reason = unconfirmed[0] or type(unconfirmed[0]).__name__
    return (
        f"stream {args.stream} did not answer for {PATIENCE} s ({reason}): "
        f"{confirmed} of {total} messages were confirmed stored, {len(unconfirmed)} are unconfirmed (they may be "
        f"stored){refused} and {total - confirmed - len(failed)} were not sent"
    )


PATIENCE = 30  # seconds a message is sent again while the stream does not answer; an election takes a few


WINDOW = 256  # JetStream publishes awaiting their acknowledgement at once


def messages(args):
    """MESSAGE with the -H headers, or else the tutorial's two messages."""
    if args.message is not None:
        # The bytes given on the command line, as they are (surrogateescape keeps any that are not UTF-8).
        return [(args.message.encode(errors="surrogateescape"), dict(args.header) or None)]
    return [
        (b"This is a simple message with some datas", None),
        (b"This is still a simple message but with some headers inside", {"Example": "True", "RandomHeaders": "True"}),
    ]


def repeated(items, count):
    """items, count times over, made one at a time: any --count costs no memory. (Past sys.maxsize, islice's
    limit, it stops at sys.maxsize: centuries of publishing.)"""
    return itertools.islice(itertools.cycle(items), min(count * len(items), sys.maxsize))


def check_size(args, nc):
    """Over max_payload, the server refuses a message and disconnects: count the headers too, as it does."""
    for data, headers in messages(args):
        header_block = [b"NATS/1.0", *(f"{k}: {v}".encode() for k, v in headers.items()), b"", b""] if headers else []
        if len(data) + len(b"\r\n".join(header_block)) > nc.max_payload:
            raise Failure(f"message too large: the server accepts at most {nc.max_payload} bytes (max_payload)")


def check_reported(args, reported):
    for e in reported:
        if isinstance(e, Failure):
            raise e
        if "permissions violation" in str(e).lower():
            raise Failure(f"permission denied: these credentials may not publish to '{args.subject}'")
        warn(e)


HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # what nats-py accepts


def header(text):
    key, equals, value = utf8(text).partition("=")
    if not equals or not HEADER_NAME.fullmatch(key) or re.search(r"[\r\n]", value):
        raise argparse.ArgumentTypeError(
            f"must be KEY=VALUE, a KEY of letters, digits or -_.!#$%&'*+^`|~ and a VALUE on one line, not {text!r}"
        )
    return key, value


def parse_args():
    parser = add_connection_flags(argparse.ArgumentParser(prog="pub.py", description="Publish messages to NATS."))
    parser.add_argument(
        "message",
        nargs="?",
        help="the message, one argument: quote one with spaces (default: the tutorial's two messages)",
    )
    parser.add_argument("more", nargs="*", help=argparse.SUPPRESS)  # to say what to do with a second word
    parser.add_argument("--count", type=positive(int), default=1, help="publish it this many times (default: 1)")
    parser.add_argument(
        "-H",
        "--header",
        type=header,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add a header to MESSAGE; repeat for more (each KEY once)",
    )
    parser.add_argument(
        "--stream",
        type=jetstream_name,
        help="publish through JetStream into this stream (created if missing): the server "
        "stores each message until it is read. A message the stream does not acknowledge (a "
        f"leader election on a cluster) is sent again for up to {PATIENCE} s, stored once",
    )
    add_replicas_flag(parser)
    args = parser.parse_args()
    if args.more:
        parser.error(
            f"MESSAGE is one argument, not {1 + len(args.more)}: quote a message with spaces, "
            f'as in "{" ".join([args.message, *args.more])}"'
        )
    keys = [key for key, _ in args.header]
    if len(set(keys)) < len(keys):
        parser.error(
            f"argument -H/--header: {next(k for k in keys if keys.count(k) > 1)} given twice: nats-py sends "
            "one value per header, so give each KEY once"
        )
    if args.replicas and not args.stream:
        parser.error("--replicas needs --stream: it is the number of copies of a new stream")
    if args.header and args.message is None:
        parser.error("-H needs a MESSAGE to go with")
    if {"*", ">"} & set(args.subject.split(".")):
        parser.error(
            f"argument --subject: cannot publish to {args.subject!r}: * and > are wildcards, which "
            "only subscribers use; name one subject"
        )
    return args


# --- Connection options: the same block in pub.py and sub.py ------------------------------------
SCALEWAY_FR_PAR = "nats://nats.mnq.fr-par.scaleway.com:4222"
PROG = os.path.basename(sys.argv[0])
REJECTIONS = 3  # a server that rejects the creds or its certificate this often in a row ends the script
GRACE = 5  # seconds that stopping may take after Ctrl+C, before the script exits anyway
PING_INTERVAL = 10  # seconds between two PINGs to the server


def add_connection_flags(parser):
    """The NATS CLI's options and variables, so one environment serves both."""
    env = os.environ.get
    parser.add_argument(
        "-s",
        "--server",
        type=nats_urls,
        default=env("NATS_URL") or SCALEWAY_FR_PAR,
        help="NATS URL, or several separated by commas (env NATS_URL; default: Scaleway fr-par)",
    )
    parser.add_argument(
        "--creds",
        default=env("NATS_CREDS") or "nats.creds",
        help="credentials file (env NATS_CREDS; default: nats.creds)",
    )
    parser.add_argument(
        "--tlsca",
        default=env("NATS_CA"),
        help="CA certificates to verify the server with (env NATS_CA; default: the system's)",
    )
    parser.add_argument(
        "--timeout", type=positive(float), default=10.0, help="seconds to wait for the first connection (default: 10)"
    )
    parser.add_argument(
        "--subject", type=subject, default="my-subject", help="subject (default: my-subject); tokens separated by dots"
    )
    return parser


def connection_options(args, on_error):
    """nats.connect()'s options for TLS, reconnection and errors; and connected(), to await it with.

    connected(nats.connect(...)) waits at most --timeout seconds, and raises Failure saying why it could
    not connect. Then nats-py reconnects by itself, forever: on_error(e) hears what goes wrong meanwhile,
    and gets a Failure if the server keeps rejecting the creds or presents a certificate that fails.
    """
    nc = None
    attempts = []  # nats-py hands each failed attempt to error_cb, then tries again
    servers = args.server.split(",")
    rejections, reconnects = 0, 0  # rejections in a row, and since which reconnection

    async def error_cb(e):
        nonlocal rejections, reconnects
        if nc is None:  # the first connection
            attempts.append(e)
            tried_all = len(attempts) >= len(servers) and all(map(unreachable, attempts[-len(servers) :]))
            if rejection(e) or tried_all:
                raise e  # ends nats-py's retries: these will not get better by retrying
        elif rejection(e):  # while reconnecting: creds revoked, or a new certificate
            if reconnects != nc.stats["reconnects"]:  # it reconnected since the last one
                rejections, reconnects = 0, nc.stats["reconnects"]
            rejections += 1
            if rejections == 1:
                warn(f"{why_not_connected(e, attempts, args)}; retrying")
            elif rejections == REJECTIONS:
                on_error(Failure(why_not_connected(e, attempts, args)))
        elif nc.is_connected and not isinstance(e, CONNECTION_LOST):
            on_error(e)  # a lost server is told by disconnected_cb; nats-py reconnects by itself

    async def connected(connecting):
        nonlocal nc
        try:
            # Without this bound, nats-py retries an unreachable server for about two minutes.
            nc = await asyncio.wait_for(connecting, args.timeout)
        except Exception as e:
            raise Failure(why_not_connected(e, attempts, args)) from None
        return nc

    options = {
        "tls": tls_context(args.tlsca),
        "error_cb": error_cb,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        # A PING every 10 s, and the connection is given up after 2 unanswered: a network that went
        # silent (no reset, no close) is noticed within about 30 s rather than 4 to 6 minutes.
        "ping_interval": PING_INTERVAL,
        "max_outstanding_pings": 2,
        # A publish that waits for room to send (a socket that takes nothing) waits at most --timeout.
        "flush_timeout": args.timeout,
    }
    return options, connected


CONNECTION_LOST = (OSError, asyncio.TimeoutError, nats.errors.UnexpectedEOF, nats.errors.StaleConnectionError)


def rejection(e):
    return isinstance(e, ssl.SSLCertVerificationError) or "Authorization Violation" in str(e)


def unreachable(e):
    return isinstance(e, (ConnectionRefusedError, socket.gaierror)) or getattr(e, "errno", None) in (
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    )


def read_creds(path):
    """The .creds file, checked: nats-py can spin forever on a malformed one, and fails on CRLF."""
    get_one = "get one with scripts/create-credentials.sh (Scaleway) or scripts/local-broker.sh"
    try:
        with open(path, encoding="utf-8") as f:  # reads Windows (CRLF) line endings as \n
            text = f.read(CREDS_LIMIT + 1)  # a real one is under 2 KB: never read a huge file (or /dev/zero) whole
    except OSError as e:
        if not os.environ.get("NATS_URL") and not os.environ.get("NATS_CREDS"):  # a terminal without the exports
            get_one = (
                "NATS_URL and NATS_CREDS are not set in this terminal: for the local broker, paste the three "
                "export lines it printed; for Scaleway, get a file with scripts/create-credentials.sh"
            )
        raise Failure(
            f"cannot read credentials file {path} (--creds or NATS_CREDS): {e.strerror}; {get_one}", 2
        ) from None
    except UnicodeDecodeError:
        raise Failure(f"credentials file {path} is not a text file (UTF-8); {get_one}", 2) from None
    if len(text) > CREDS_LIMIT:
        raise Failure(
            f"credentials file {path} is too large for a creds file (over {CREDS_LIMIT // 1024} KB); {get_one}", 2
        )
    for block, body in (("NATS USER JWT", r"[\w.-]+"), ("USER NKEY SEED", r"SU[A-Z2-7]+")):
        if not re.search(rf"-----BEGIN {block}-----\n{body}\n------END {block}------", text):
            raise Failure(f"credentials file {path} is malformed: no {block} block; {get_one}", 2)
    return RawCredentials(text)


CREDS_LIMIT = 64 * 1024  # characters


def tls_context(cafile):
    """None lets nats-py verify the server against the system's CAs when the server requires TLS."""
    try:
        return ssl.create_default_context(cafile=cafile) if cafile else None
    except (OSError, ssl.SSLError) as e:
        raise Failure(f"cannot use CA file {cafile} (--tlsca or NATS_CA): {e.strerror or e}", 2) from None


def why_not_connected(e, attempts, args):
    where, check = shown(args.server), "check --server or NATS_URL"
    if isinstance(e, ssl.SSLCertVerificationError):
        fix = (
            "connect with a host name the certificate was issued for"
            if "mismatch" in e.verify_message
            else "if the server uses a private CA, give it with --tlsca or NATS_CA"
        )
        return f"certificate verification failed for {where}: {e.verify_message}; {fix}"
    if "Authorization Violation" in str(e):
        return f"authorization failed at {where}: the server rejected the credentials in {args.creds}"
    if isinstance(e, ConnectionRefusedError):
        return f"could not connect to {where}: connection refused, nothing listens there; {check}"
    if isinstance(e, socket.gaierror):
        return f"could not connect to {where}: unknown host ({e.strerror}); {check}"
    if isinstance(e, asyncio.TimeoutError):
        last = str(attempts[-1]) if attempts else ""
        return f"could not connect to {where} within {args.timeout:g} s ({last or 'no answer'}); {check}"
    return f"could not connect to {where}: {e}; {check}"


async def close(nc):
    """nc.close(), bounded (after a failed TLS handshake it can wait forever for the socket to close), and
    quiet: after a cut connection nats-py's close() can fail on a transport that is gone."""
    try:
        await asyncio.wait_for(nc.close(), 2)
    except Exception:
        pass


class Stop(asyncio.Event):
    """Set to stop the script: by Ctrl+C or SIGTERM once catch_signals() ran, or by the script itself.

    A second signal, or a first one that is not obeyed within GRACE seconds, ends the script at once.
    """

    signal = None  # the signal that set it, if one did
    failure = None  # the Failure that set it, if one did

    def report(self, e):
        """What goes wrong once connected: a Failure stops the script, anything else is a warning."""
        if isinstance(e, Failure):
            self.failure = self.failure or e
            self.set()
        else:
            warn(e)

    def catch_signals(self):
        loop = asyncio.get_running_loop()

        def handler(signum, frame):
            if self.signal or loop.is_closed():
                os._exit(128 + signum)  # the second Ctrl+C: no more waiting
            self.signal = signum
            loop.call_soon_threadsafe(self.set)
            watchdog = threading.Timer(GRACE, gave_up, (signum,))
            watchdog.daemon = True  # it ends with the script
            watchdog.start()

        # signal.signal, not loop.add_signal_handler: Windows' event loops do not have that one.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)


def gave_up(signum):
    warn(f"could not stop cleanly within {GRACE} s; exiting anyway (what was not yet printed or sent is lost)")
    os._exit(128 + signum)


class Failure(Exception):
    """One line for stderr; exit code 2 for bad configuration, 1 for a failure at run time."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def run(main, args):
    """asyncio.run(main(args)), turning a Failure, Ctrl+C or a closed output into one line and an exit code."""
    # asyncio warns "returning true from eof_received()" each time a TLS peer closes: harmless noise.
    logging.getLogger("asyncio").addFilter(lambda record: "eof_received" not in record.getMessage())
    # Print any text: UTF-8 when redirected (Windows would pick cp1252), \-escapes where a terminal cannot.
    if not sys.stdout.isatty():
        sys.stdout.reconfigure(encoding="utf-8")
    sys.stdout.reconfigure(errors="backslashreplace")
    try:
        asyncio.run(main(args))
        sys.stdout.flush()
    except Failure as e:
        print(f"{PROG}: error: {escaped(str(e))}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        if e.errno not in OUTPUT_ERRORS:
            raise
        output_failed(e)


OUTPUT_ERRORS = (errno.EPIPE, errno.EINVAL, errno.ENOSPC, errno.EIO, errno.EFBIG)


def output_failed(e):
    """stdout is gone: its reader left (| head) or the disk is full. Stop at once, like any Unix filter."""
    if e.errno in (errno.EPIPE, errno.EINVAL):  # EINVAL: a closed pipe on Windows
        os._exit(0)
    print(f"{PROG}: error: cannot write the output: {e.strerror}", file=sys.stderr, flush=True)
    os._exit(1)


def warn(text):
    print(f"{PROG}: warning: {escaped(str(text))}", file=sys.stderr, flush=True)


# Control characters, line breaks and Unicode format characters (Cf: zero-width, bidirectional marks), shown
# \-escaped: text from the network or the command line cannot fake a line, reorder one, or command the terminal.
CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)


def escaped(text):
    if text.isprintable():  # the usual case, checked fast: no control or format character in it
        return text
    return CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def shown(urls):
    """URLs as they may be printed: without a user:password@ in them."""
    return escaped(re.sub(r"(?<=//)[^/@,]*@", "***@", urls))


def address(nc):
    """host:port of the server nc is connected to (it may be one the cluster announced)."""
    url = nc.connected_url  # None when that connection is already lost: nats-py is reconnecting
    return escaped(f"{url.hostname}:{url.port}") if url else "(lost, reconnecting)"


def subject(text):
    """A subject: tokens separated by dots; the token * matches any one token, > (last) all the rest."""
    tokens = utf8(text).split(".")
    if not all(token and not re.search(r"[\s\x00-\x1f\x7f]", token) for token in tokens) or ">" in tokens[:-1]:
        raise argparse.ArgumentTypeError(
            f"not a valid subject: {text!r} (tokens between single dots, no spaces; > only as the last token)"
        )
    return text


def nats_urls(text):
    """nats:// and tls:// URLs, comma-separated: nats-py would take http:// for a host named http, and try ws://
    for the whole --timeout before saying it cannot."""
    for url in utf8(text).split(","):
        scheme = url.split("://")[0].lower() if "://" in url else "nats"
        if scheme not in ("nats", "tls"):
            raise argparse.ArgumentTypeError(
                f"{shown(url)!r} (from -s or NATS_URL): {scheme}:// is not supported "
                "here; use nats://HOST:PORT or tls://HOST:PORT"
            )
    return text


def utf8(text):
    try:
        text.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid UTF-8") from None
    return text


def positive(kind):
    def parse(text):
        try:
            if kind(text) > 0:
                return kind(text)
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")

    return parse


# JetStream: streams keep messages until a consumer has read them. On a cluster (MnQ is one), each stream and
# consumer has a leader node; while a new one is elected (a few seconds after a node is lost), they do not answer.


async def ensure_stream(nc, args, outage):
    """The stream args.stream, capturing args.subject; created if missing, with file storage (MnQ's only kind)
    and --replicas copies."""
    js = nc.jetstream()
    try:
        info = await outage.retry(lambda: js.stream_info(args.stream))
    except nats.js.errors.NotFoundError:
        try:
            await outage.retry(
                lambda: js.add_stream(
                    name=args.stream,
                    subjects=[args.subject],
                    storage="file",
                    num_replicas=args.replicas or default_replicas(nc),
                )
            )
            return
        except nats.js.errors.BadRequestError as e:
            if e.err_code == 10065:  # another stream captures this subject: a message is stored in one stream only
                other = await outage.retry(lambda: js.find_stream_name_by_subject(args.subject))
                raise Failure(
                    f"stream {other} already captures '{args.subject}'; use --stream {other}, or another --subject", 2
                ) from None
            if e.err_code != 10058:  # 10058: it exists already: made by another script, or by a retry here
                raise
            info = await outage.retry(lambda: js.stream_info(args.stream))
    subjects = info.config.subjects or []
    if not any(captures(pattern, args.subject) for pattern in subjects):
        raise Failure(
            f"stream {args.stream} does not capture '{args.subject}': its subjects are "
            f"{', '.join(repr(s) for s in subjects) or 'none'}; use one of them with --subject, "
            "or another --stream",
            2,
        )


def add_replicas_flag(parser):
    parser.add_argument(
        "--replicas",
        type=int,
        choices=range(1, 6),
        metavar="{1..5}",
        help="with --stream: copies a new stream keeps, each on another node (default: 3 on a "
        "cluster, 1 on a single server); an existing stream keeps its own",
    )


def default_replicas(nc):
    """3 copies of a new stream on a cluster (one copy is lost while its node is down), 1 on a single server.
    nats-py keeps the server's INFO in _server_info; it names a cluster when the server belongs to one."""
    return 3 if nc._server_info.get("cluster") else 1


class Outage:
    """Calls again what fails while a stream or consumer has no leader; one warning when that starts, one when
    it ends. patience: seconds to keep trying (None: forever); giving_up(): stop trying at once."""

    def __init__(self, what, patience=None, giving_up=lambda: False):
        self.what, self.patience, self.giving_up = what, patience, giving_up
        self.since = None  # when the current outage started
        self.ended = 0.0  # when the last one ended

    async def retry(self, call):
        first_failure = None
        while True:
            started = time.monotonic()
            try:
                result = await call()
            except Exception as e:
                first_failure = first_failure or started
                if (
                    not unavailable(e)
                    or self.giving_up()
                    or (self.patience is not None and time.monotonic() - first_failure >= self.patience)
                ):
                    raise
                self.lost(e, started)
                await asyncio.sleep(RETRY_WAIT)
                continue
            self.answered(started)
            return result

    def lost(self, e, started):
        if self.since is None and started >= self.ended:  # not a late answer from before the last outage ended
            self.since = started
            limit = f"for up to {self.patience:g} s" if self.patience is not None else "until it answers"
            warn(f"{self.what} is not answering ({e or type(e).__name__}); trying again {limit}")

    def answered(self, started):
        if self.since is not None and started >= self.since:
            warn(f"{self.what} is answering again after {time.monotonic() - self.since:.1f} s")
            self.since, self.ended = None, time.monotonic()


RETRY_WAIT = 0.5  # seconds between two tries while a stream or consumer does not answer


def unavailable(e):
    """What a stream or consumer without a leader answers for a moment: no answer at all, no responders, a 503
    without an error code, or "temporarily unavailable" (10008), "not leader" (10009), "stream offline" (10118)."""
    if isinstance(e, nats.js.errors.APIError):
        return (e.code == 503 and e.err_code is None) or e.err_code in (10008, 10009, 10118)
    return isinstance(
        e,
        (
            asyncio.TimeoutError,
            nats.errors.NoRespondersError,
            nats.js.errors.NoStreamResponseError,
            nats.errors.ConnectionReconnectingError,
        ),
    )


def captures(pattern, subject):
    """True if every subject that subject matches, pattern matches too (* is one token, > the rest)."""
    pattern, subject = pattern.split("."), subject.split(".")
    for i, token in enumerate(pattern):
        if token == ">":
            return len(subject) > i
        if i >= len(subject) or subject[i] == ">" or token not in ("*", subject[i]):
            return False
    return len(pattern) == len(subject)


def why_jetstream_failed(e, args):
    if isinstance(e, nats.js.errors.ServiceUnavailableError) and e.err_code == 10039:
        return (
            f"JetStream is not enabled for this account at {shown(args.server)}; publish and subscribe without --stream"
        )
    if isinstance(e, nats.js.errors.APIError):
        return f"stream {args.stream}: the server refused: {e.description}"
    return f"stream {args.stream}: {e or type(e).__name__}"


def jetstream_name(text):
    """A stream or consumer name: no spaces, dots, wildcards or path separators."""
    if not re.fullmatch(r"[^\s.*>/\\\x00-\x1f\x7f]{1,255}", utf8(text)):
        raise argparse.ArgumentTypeError(f"not a valid name: {text!r} (no spaces, no . * > / or \\)")
    return text


# --- End of the connection options -----------------------------------------------------------------


if __name__ == "__main__":
    run(main, parse_args())
