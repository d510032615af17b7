#!/usr/bin/env python3
"""Subscribe to a subject on Scaleway Messaging and Queuing (NATS) and print every message.

Usage:
    python3 sub.py                          # print messages on 'my-subject' until Ctrl+C
    python3 sub.py --count 10               # exit after 10 messages
    python3 sub.py --queue workers          # share the messages with other members of 'workers'
    python3 sub.py -s nats://127.0.0.1:4222 --creds nats.creds --subject orders

Connection options: -s/--server (env NATS_URL), --creds (env NATS_CREDS), --tlsca (env NATS_CA),
--timeout, --subject. Run `python3 sub.py --help` for all of them.
"""

import argparse
import asyncio
import logging
import os
import re
import signal
import ssl
import sys

import nats

# --- Connection options: the same block in pub.py and sub.py ------------------------------------
SCALEWAY_FR_PAR = "nats://nats.mnq.fr-par.scaleway.com:4222"


def connection_options(parser):
    """The NATS CLI's options and variables, so one environment serves both."""
    env = os.environ.get
    parser.add_argument("-s", "--server", default=env("NATS_URL") or SCALEWAY_FR_PAR,
                        help="NATS URL, or several separated by commas (env NATS_URL; default: Scaleway fr-par)")
    parser.add_argument("--creds", default=env("NATS_CREDS") or "nats.creds",
                        help="credentials file (env NATS_CREDS; default: nats.creds)")
    parser.add_argument("--tlsca", default=env("NATS_CA"),
                        help="CA certificates to verify the server with (env NATS_CA; default: the system's)")
    parser.add_argument("--timeout", type=positive(float), default=10.0,
                        help="seconds to wait for the first connection (default: 10)")
    parser.add_argument("--subject", default="my-subject", help="subject (default: my-subject)")
    return parser


async def connect(args, on_error, **callbacks):
    """Connect with a .creds file, as MnQ requires; raise Failure saying why it cannot, never hang."""
    check_creds_file(args.creds)  # nats-py can spin forever on a malformed creds file
    tls = tls_context(args.tlsca)
    servers = args.server.split(",")
    attempts = []  # nats-py hands each failed attempt to error_cb, then tries again

    async def error_cb(e):
        if attempts is not None:  # still connecting
            attempts.append(e)
            if isinstance(e, ssl.SSLCertVerificationError) or "Authorization Violation" in str(e):
                raise e  # ends the retries: a rejected creds file or certificate will not get better
        elif not (nc.is_reconnecting or isinstance(e, nats.errors.UnexpectedEOF)):
            await on_error(e)  # but not the loss of the server: nats-py reconnects by itself

    try:
        # Without this bound, nats-py retries an unreachable server for about two minutes.
        nc = await asyncio.wait_for(nats.connect(
            servers, user_credentials=args.creds, tls=tls, error_cb=error_cb,
            max_reconnect_attempts=-1, reconnect_time_wait=1, **callbacks), args.timeout)
    except Exception as e:
        raise Failure(why_not_connected(e, attempts, args)) from None
    attempts = None
    return nc


def check_creds_file(path):
    get_one = "get one with scripts/create-credentials.sh (Scaleway) or scripts/local-broker.sh"
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise Failure(f"cannot read credentials file {path}: {e.strerror}; {get_one}", 2) from None
    if "\r" in text:
        raise Failure(f"credentials file {path} has Windows (CRLF) line endings; fix it: dos2unix {path}", 2)
    for block, body in (("NATS USER JWT", r"[\w.-]+"), ("USER NKEY SEED", r"SU[A-Z2-7]+")):
        if not re.search(rf"-----BEGIN {block}-----\n{body}\n------END {block}------", text):
            raise Failure(f"credentials file {path} is malformed: no {block} block; {get_one}", 2)


def tls_context(cafile):
    """None lets nats-py verify the server against the system's CAs when the server requires TLS."""
    try:
        return ssl.create_default_context(cafile=cafile) if cafile else None
    except (OSError, ssl.SSLError) as e:
        raise Failure(f"cannot use CA file {cafile} (--tlsca or NATS_CA): {e.strerror or e}", 2) from None


def why_not_connected(e, attempts, args):
    where = args.server
    if isinstance(e, ssl.SSLCertVerificationError):
        fix = ("connect with a host name the certificate was issued for" if "mismatch" in e.verify_message
               else "if the server uses a private CA, give it with --tlsca or NATS_CA")
        return f"certificate verification failed for {where}: {e.verify_message}; {fix}"
    if "Authorization Violation" in str(e):
        return f"authorization failed at {where}: the server rejected the credentials in {args.creds}"
    if isinstance(e, asyncio.TimeoutError):
        last = f" ({attempts[-1]})" if attempts else ""
        return f"could not connect to {where} within {args.timeout:g} s{last}; check --server or NATS_URL"
    return f"could not connect to {where}: {e}; check --server or NATS_URL"


class Failure(Exception):
    """One line for stderr; exit code 2 for bad configuration, 1 for a failure at run time."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def run(main, args, prog):
    """asyncio.run(main(args)), turning a Failure or Ctrl+C into one line and an exit code."""
    # asyncio warns "returning true from eof_received()" each time a TLS peer closes: harmless noise.
    logging.getLogger("asyncio").addFilter(lambda record: "eof_received" not in record.getMessage())
    try:
        asyncio.run(main(args))
    except Failure as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        sys.exit(130)


def positive(kind):
    def parse(text):
        try:
            if kind(text) > 0:
                return kind(text)
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")

    return parse
# --- End of the connection options -----------------------------------------------------------------


async def main(args):
    print("Connection")

    # After the first connection, nats-py reconnects by itself, forever: these only tell the user.
    async def disconnected():
        if not nc.is_closed:
            print("Disconnected from NATS, reconnecting...", flush=True)

    async def reconnected():
        print(f"Reconnected to NATS at {nc.connected_url.netloc}", flush=True)

    nc = await connect(args, on_error=warn, disconnected_cb=disconnected, reconnected_cb=reconnected)
    print(f"Connected to NATS at {nc.connected_url.netloc}...")

    # Ctrl+C and SIGTERM only set this event: main() then drains the connection and returns.
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)

    received = 0

    async def on_message(msg):
        nonlocal received
        received += 1
        print(f"Received a message on '{msg.subject}': {msg.data.decode(errors='replace')}")
        print(f"Headers maybe: {msg.headers}", flush=True)
        if received == args.count:
            stop.set()

    print("Subscribing")
    # In a queue group, the server hands each message to only one of the group's subscribers.
    sub = await nc.subscribe(args.subject, queue=args.queue, cb=on_message)
    if args.count:
        await sub.unsubscribe(limit=args.count)  # the server stops sending after that many
    await nc.flush()  # a round trip: the server now knows about the subscription
    print("Subscription OK", flush=True)

    await stop.wait()
    print("Disconnecting...", flush=True)
    if nc.is_reconnecting:
        await nc.close()  # the server is away: there is nothing to drain
    else:
        # drain() unsubscribes, lets on_message finish what has already arrived, then closes.
        await nc.drain()
    print("Disconnection OK")


async def warn(e):
    print(f"sub.py: warning: {e}", file=sys.stderr, flush=True)


def parse_args():
    parser = connection_options(argparse.ArgumentParser(prog="sub.py", description="Print messages from NATS."))
    parser.add_argument("--count", type=positive(int), help="exit after this many messages")
    parser.add_argument("--queue", default="", help="join this queue group: each message goes to one member")
    return parser.parse_args()


if __name__ == "__main__":
    run(main, parse_args(), "sub.py")
