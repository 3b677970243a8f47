"""A local upstream that records every request it gets and answers 200, to see exactly
which headers the filter forwards."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo:
    def __init__(self):
        self.requests = []
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def parse_request(self):
                # CPython rewrites a target that starts with "//" to "/" (gh-87389): record
                # the target as it was sent.
                ok = super().parse_request()
                words = self.requestline.split()
                if ok and len(words) == 3 and words[1].startswith("//"):
                    self.path = words[1]
                return ok

            def _handle(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                echo.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
                out = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
