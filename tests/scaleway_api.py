"""A local stand-in for Scaleway's MnQ NATS API (v1beta1), reached by the scripts through SCW_API_URL.

It answers with the shapes, status codes and error bodies the real API uses, and records every request
so the tests can check exactly what the scripts sent.
"""

import json
import random
import string
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_KEY = "11111111-2222-3333-4444-555555555555"
PROJECT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
PREFIX = "/mnq/v1beta1/regions/"
NOW = "2026-11-29T12:00:00.000000Z"


class ScalewayAPI:
    def __init__(self, creds_content="", endpoint="nats://nats.mnq.fr-par.scaleway.com:4222"):
        self.creds_content = creds_content  # what POST /nats-credentials hands out
        self.endpoint = endpoint
        self.requests = []  # (method, path, headers, json body or None)
        self.accounts = {}
        self.credentials = {}
        self.override = None  # (status, body) to answer the next request with, whatever it is
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

    def answer(self, method, path, body):
        """(status, body) for one request, as the real API answers it."""
        region, _, resource = path[len(PREFIX):].partition("/")
        if region not in ("fr-par", "nl-ams"):
            return 404, {"message": "resource is not found", "type": "not_found"}
        collection, _, item = resource.partition("/")
        if (method, collection, item) == ("POST", "nats-accounts", ""):
            account = {
                "id": "A" + "".join(random.choices(string.ascii_uppercase + "234567", k=55)),
                "name": body["name"], "endpoint": self.endpoint, "project_id": body["project_id"],
                "region": region, "created_at": NOW, "updated_at": NOW,
            }
            self.accounts[account["id"]] = account
            return 200, account
        if (method, collection, item) == ("POST", "nats-credentials", ""):
            if len(body.get("nats_account_id", "")) != 56:
                return 400, {"details": [{"argument_name": "nats_account_id", "help_message":
                                          "value length must be 56 runes", "reason": "constraint"}],
                             "message": "invalid argument(s)", "type": "invalid_arguments"}
            if body["nats_account_id"] not in self.accounts:
                return 404, {"message": "resource is not found", "resource": "nats_account",
                             "resource_id": body["nats_account_id"], "type": "not_found"}
            creds = {"id": str(uuid.uuid4()), "name": body["name"], "nats_account_id": body["nats_account_id"],
                     "region": region, "created_at": NOW, "updated_at": NOW,
                     "credentials": {"name": "user.creds", "content": self.creds_content}, "checksum": "0" * 40}
            self.credentials[creds["id"]] = creds
            return 200, creds
        store = {"nats-accounts": self.accounts, "nats-credentials": self.credentials}.get(collection)
        if method == "DELETE" and store is not None and item:
            if store.pop(item, None) is None:
                return 404, {"message": "resource is not found", "resource": collection, "resource_id": item,
                             "type": "not_found"}
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
                    status, answer = 401, {"message": "authentication is denied", "method": "api_key",
                                           "reason": "invalid_argument", "type": "denied_authentication"}
                elif api.override:
                    (status, answer), api.override = api.override, None
                else:
                    status, answer = api.answer(self.command, self.path, body)
                data = b"" if answer is None else (answer if isinstance(answer, bytes) else json.dumps(answer).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler
