"""Local stand-ins shared by the end-to-end tests."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GRANT_PREFIX = "/v1/secret/data/aws/grants/"


def kv2(data: dict) -> tuple[int, str, bytes]:
    """A KV version 2 answer holding ``data``."""
    return 200, "application/json", json.dumps({"data": {"data": data, "metadata": {"version": 1}}}).encode()


class FakeVault:
    """A vault stand-in answering per grant id. An answer is ``(status, content_type, body)``,
    ``"slow"`` (answers after ``slow_seconds``), ``"reset"`` (closes the connection with a
    RST without answering) or ``"relay"`` (forwards the request, with its X-Vault-Token, to
    ``self.upstream``, the real OpenBao). Unknown grants get 404, or with ``relay_unknown``
    are relayed too (a recording relay in front of OpenBao). Every request is recorded, with
    its arrival time (``time.monotonic()``). While ``frozen`` is set, requests get no answer
    until it is cleared (a vault that hangs)."""

    def __init__(self, answers: dict, slow_seconds: float = 1.5, relay_unknown: bool = False):
        self.answers = answers
        self.upstream: str | None = None
        self.requests: list[dict] = []
        self.frozen = threading.Event()
        self.thawed = threading.Event()
        self.thawed.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server naming
                fake.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                      "t": time.monotonic()})
                if fake.frozen.is_set():
                    fake.thawed.wait(60)
                grant = self.path[len(GRANT_PREFIX):] if self.path.startswith(GRANT_PREFIX) else None
                answer = fake.answers.get(grant)
                if answer is None and relay_unknown:
                    answer = "relay"
                if answer == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if answer == "slow":
                    time.sleep(slow_seconds)
                    answer = kv2({})
                if answer == "relay" and fake.upstream:
                    token = self.headers.get("x-vault-token", "")
                    req = urllib.request.Request(fake.upstream + self.path, headers={"X-Vault-Token": token})
                    try:
                        with urllib.request.urlopen(req, timeout=5) as r:
                            answer = (r.status, r.headers.get("content-type", ""), r.read())
                    except urllib.error.HTTPError as e:
                        answer = (e.code, e.headers.get("content-type", ""), e.read())
                if not isinstance(answer, tuple):
                    answer = (404, "application/json", b'{"errors":[]}')
                status, ctype, body = answer
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # Envoy gave up (timeout) before the answer

            def do_POST(self):  # noqa: N802 - http.server naming
                """Token calls (login, renew-self): recorded with their body, and relayed."""
                body = self.rfile.read(int(self.headers.get("content-length", "0") or 0))
                fake.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                      "t": time.monotonic()})
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("x-vault-token", "content-type")}
                req = urllib.request.Request((fake.upstream or "") + self.path, data=body, headers=headers,
                                             method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        answer = (r.status, r.headers.get("content-type", ""), r.read())
                except urllib.error.HTTPError as e:
                    answer = (e.code, e.headers.get("content-type", ""), e.read())
                except (OSError, ValueError):
                    answer = (503, "application/json", b'{"errors":["no upstream"]}')
                status, ctype, out = answer
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def freeze(self):
        self.thawed.clear()
        self.frozen.set()

    def thaw(self):
        self.frozen.clear()
        self.thawed.set()

    def stop(self):
        self.thaw()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        vals = [v for k, v in self.headers if k == name]
        return vals[0] if vals else None


def exchange(port: int, head: bytes, body: bytes = b"") -> Reply:
    """Send a request head and (part of) a body; read one answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head_part, _, rest = data.partition(b"\r\n\r\n")
        lines = head_part.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
        length = int(dict(headers).get("content-length", "0"))
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return Reply(status, headers, rest[:length])
