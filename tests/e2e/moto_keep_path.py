"""moto's server, started as ``moto_server -H HOST -p PORT`` starts it (moto.server.main), with one difference:
the request target reaches moto as it was sent.

CPython's ``http.server``, under werkzeug's development server that moto runs on, rewrites a
request target that starts with ``//`` to a single ``/`` (gh-87389, a guard against open
redirects in file servers). AWS does not: ``PUT //leading-slash-key`` to a virtual-hosted
bucket writes the key ``/leading-slash-key``, and its signature covers ``//leading-slash-key``.
Without this, moto checks the signature of a path that nobody sent. Werkzeug itself reads a
``//`` target correctly (it puts the first segment back in front of the path), and so does
moto's ``Request.raw_path``.

The signature check (``moto.iam.access_control``) then hands the bare path to botocore as the
request's URL, and ``urlsplit("//key")`` reads ``key`` as a host name: the canonical URI
becomes empty. Here it gets a URL with a scheme and host in front (only the path and query
of that URL are signed; the host comes from the signed headers)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from moto.iam.access_control import IAMRequestBase
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class KeepTargetHandler(MotoRequestHandler):
    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            words = self.requestline.split()
            if len(words) == 3 and words[1].startswith("//"):
                self.path = words[1]
        return ok


_create_aws_request = IAMRequestBase._create_aws_request


def _create_aws_request_with_origin(self):
    request = _create_aws_request(self)
    if request.url.startswith("//"):
        request.url = "http://aws.invalid" + request.url
    return request


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    IAMRequestBase._create_aws_request = _create_aws_request_with_origin
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(args.host, args.port, app, threaded=True, request_handler=KeepTargetHandler)


if __name__ == "__main__":
    main()
