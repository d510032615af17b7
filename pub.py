#!/usr/bin/env python3
"""Publish messages to a subject on Scaleway Messaging and Queuing (NATS).

Usage:
    python3 pub.py                          # the tutorial's two messages on 'my-subject'
    python3 pub.py "hello"                  # one message of your own
    python3 pub.py --count 1000 -H Example=True "hello"
    python3 pub.py -s nats://127.0.0.1:4222 --creds nats.creds --subject orders "hello"

Connection options: -s/--server (env NATS_URL), --creds (env NATS_CREDS), --tlsca (env NATS_CA),
--timeout, --subject. Run `python3 pub.py --help` for all of them.
"""

import argparse
import asyncio
import logging
import os
import re
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
    refused = []

    async def on_error(e):
        # The server refuses a forbidden publish with an error that arrives later, on its own.
        if "permissions violation" in str(e).lower():
            refused.append(e)
        else:
            print(f"pub.py: warning: {e}", file=sys.stderr)

    nc = await connect(args, on_error=on_error)
    print(f"Connected to NATS at {nc.connected_url.netloc}...")
    batch = messages(args) * args.count
    try:
        for data, headers in batch:
            await nc.publish(args.subject, data, headers=headers)  # only buffers: nothing is sent yet
        # flush() is a round trip: when the server answers, it has received everything before it.
        await nc.flush(args.timeout)
        # A refusal can arrive just after that answer: one more round trip before claiming success.
        await nc.flush(args.timeout)
    except nats.errors.MaxPayloadError:
        raise Failure(f"message too large: the server accepts at most {nc.max_payload} bytes (max_payload)") from None
    except nats.errors.Error as e:  # the server went away, or did not answer in time
        raise Failure(f"publishing to {args.server} failed: {e}") from None
    finally:
        await nc.close()
    if refused:
        raise Failure(f"permission denied: these credentials may not publish to '{args.subject}'")
    print(f"Published {len(batch)} messages to '{args.subject}'")


def messages(args):
    """MESSAGE with the -H headers, or else the tutorial's two messages."""
    if args.message is not None:
        return [(args.message.encode(), dict(args.header) or None)]
    return [
        (b"This is a simple message with some datas", None),
        (b"This is still a simple message but with some headers inside", {"Example": "True", "RandomHeaders": "True"}),
    ]


def header(text):
    key, equals, value = text.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, not {text!r}")
    return key, value


def parse_args():
    parser = connection_options(argparse.ArgumentParser(prog="pub.py", description="Publish messages to NATS."))
    parser.add_argument("message", nargs="?", help="the message (default: the tutorial's two messages)")
    parser.add_argument("--count", type=positive(int), default=1, help="publish it this many times (default: 1)")
    parser.add_argument("-H", "--header", type=header, action="append", default=[], metavar="KEY=VALUE",
                        help="add a header to MESSAGE; repeat for more")
    args = parser.parse_args()
    if args.header and args.message is None:
        parser.error("-H needs a MESSAGE to go with")
    return args


if __name__ == "__main__":
    run(main, parse_args(), "pub.py")
