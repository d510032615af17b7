"""A local stand-in for Scaleway's MnQ NATS API (v1beta1), reached by the scripts through SCW_API_URL.

It answers with the shapes, status codes and error bodies the real API uses, and records every request
so the tests can check exactly what the scripts sent. Where a shape was seen is noted beside it:
"recorded" means a real exchange kept in scaleway-cli's or terraform-provider-scaleway's test cassettes,
"SDK" means the error types of Scaleway's Go and JS SDKs (no recording of that error for MnQ).
"""

import json
import random
import string
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SECRET_KEY = "11111111-2222-3333-4444-555555555555"
PROJECT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
PREFIX = "/mnq/v1beta1/regions/"
REGIONS = ("fr-par", "nl-ams")
NOW = "2026-11-29T12:00:00.000000Z"
ACCOUNT_QUOTA = 10  # NATS accounts per organization


def not_found(resource, resource_id):
    # recorded: 404 bodies name accounts "namespace" (the v1alpha1 name) and credentials "credentials"
    return 404, {
        "message": "resource is not found",
        "resource": resource,
        "resource_id": resource_id,
        "type": "not_found",
    }


def quota_exceeded(resource, quota, current):
    # SDK: QuotasExceededError, details [{resource, quota, current}], answered with 403
    return 403, {
        "details": [{"current": current, "organization_id": PROJECT_ID, "quota": quota, "resource": resource}],
        "message": "quota(s) exceeded for this resource",
        "type": "quotas_exceeded",
    }


# recorded: a permission the API key's policy lacks
PERMISSIONS_DENIED = (
    403,
    {
        "details": [{"action": "read", "resource": "namespace"}],
        "message": "insufficient permissions",
        "type": "permissions_denied",
    },
)
# recorded: an unknown secret key
DENIED_AUTHENTICATION = (
    401,
    {
        "message": "authentication is denied",
        "method": "api_key",
        "reason": "not_found",
        "type": "denied_authentication",
    },
)


class ScalewayAPI:
    def __init__(self, creds_content="", endpoint=None):
        self.creds_content = creds_content  # what POST /nats-credentials hands out
        self.endpoint = endpoint  # None: the region's own, as the real API answers
        self.requests = []  # (method, path, headers, json body or None)
        self.accounts = {}  # id -> the account, as GET answers it
        self.credentials = {}  # id -> the credentials, as GET answers them (no file)
        self.override = None  # (status, body) to answer the next request with, whatever it is
        self.fail = {}  # (method, collection) -> (status, body), answered every time
        self.stalled = False  # True: requests get no answer until close()
        self._released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    def credentials_of(self, account_id):
        return [c for c in self.credentials.values() if c["nats_account_id"] == account_id]

    def answer(self, method, url, body):
        """(status, body) for one request, as the real API answers it."""
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        region, _, resource = parts.path[len(PREFIX) :].partition("/")
        collection, _, item = resource.partition("/")
        if not parts.path.startswith(PREFIX) or region not in REGIONS:
            return 404, {"message": "resource is not found", "type": "not_found"}
        if (method, collection) in self.fail:
            return self.fail[method, collection]
        if collection == "nats-accounts":
            return self.accounts_answer(method, region, item, query, body)
        if collection == "nats-credentials":
            return self.credentials_answer(method, region, item, query, body)
        return 404, {"message": "resource is not found", "type": "not_found"}

    def accounts_answer(self, method, region, item, query, body):
        # Accounts live in one region: asked for in another, they are not found there.
        account = self.accounts.get(item)
        if item and (account is None or account["region"] != region):
            return not_found("namespace", item)
        if method == "POST" and not item:
            if len(self.accounts) >= ACCOUNT_QUOTA:
                return quota_exceeded("mnq_nats_accounts", ACCOUNT_QUOTA, len(self.accounts))
            account = {
                "id": "A" + "".join(random.choices(string.ascii_uppercase + "234567", k=55)),
                "name": body["name"],
                "endpoint": self.endpoint or f"nats://nats.mnq.{region}.scaleway.com:4222",
                "project_id": body["project_id"],
                "region": region,
                "created_at": NOW,
                "updated_at": NOW,
            }
            self.accounts[account["id"]] = account
            return 200, account
        if method == "GET" and item:
            return 200, account
        if method == "GET":
            found = [
                a
                for a in self.accounts.values()
                if a["region"] == region and query.get("project_id", a["project_id"]) == a["project_id"]
            ]
            return 200, page(query, "nats_accounts", found)
        if method == "DELETE" and item:
            # recorded: 204, empty body; the account's credentials go with it
            del self.accounts[item]
            for creds in self.credentials_of(item):
                del self.credentials[creds["id"]]
            return 204, None
        return 404, {"message": "resource is not found", "type": "not_found"}

    def credentials_answer(self, method, region, item, query, body):
        creds = self.credentials.get(item)
        if item and (creds is None or creds["region"] != region):
            return not_found("credentials", item)
        if method == "POST" and not item:
            account_id = body.get("nats_account_id", "")
            if len(account_id) != 56:
                # recorded
                return 400, {
                    "details": [
                        {
                            "argument_name": "nats_account_id",
                            "help_message": "value length must be 56 runes",
                            "reason": "constraint",
                        }
                    ],
                    "message": "invalid argument(s)",
                    "type": "invalid_arguments",
                }
            account = self.accounts.get(account_id)
            if account is None or account["region"] != region:
                return not_found("namespace", account_id)
            creds = {
                "id": str(uuid.uuid4()),
                "name": body["name"],
                "nats_account_id": account_id,
                "region": region,
                "created_at": NOW,
                "updated_at": NOW,
                "credentials": None,
                "checksum": f"{random.getrandbits(160):040x}",
            }
            self.credentials[creds["id"]] = creds
            # recorded: only the answer to the create call holds the file
            return 200, {**creds, "credentials": {"name": "user.creds", "content": self.creds_content}}
        if method == "GET" and item:
            return 200, creds
        if method == "GET":
            found = [
                c
                for c in self.credentials.values()
                if c["region"] == region and query.get("nats_account_id", c["nats_account_id"]) == c["nats_account_id"]
            ]
            return 200, page(query, "nats_credentials", found)
        if method == "DELETE" and item:
            del self.credentials[item]
            return 204, None
        return 404, {"message": "resource is not found", "type": "not_found"}

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                api.requests.append((self.command, self.path, dict(self.headers), body))
                if api.stalled:
                    api._released.wait(60)
                    return
                if self.headers.get("X-Auth-Token") != SECRET_KEY:
                    status, answer = DENIED_AUTHENTICATION
                elif api.override:
                    (status, answer), api.override = api.override, None
                else:
                    status, answer = api.answer(self.command, self.path, body)
                data = b"" if answer is None else (answer if isinstance(answer, bytes) else json.dumps(answer).encode())
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler


def page(query, key, items):
    """A list answer: one page of items, and the total count before paging (recorded shape)."""
    number, size = int(query.get("page", 1)), int(query.get("page_size", 50))
    return {"total_count": len(items), key: items[(number - 1) * size : number * size]}
