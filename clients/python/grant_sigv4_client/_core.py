"""Implementation of the grant-sigv4 client helpers (see the package docstring)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

GRANT_HEADER = "x-grant-id"
REASON_HEADER = "x-grant-reason"
CONTEXT_HEADER = "x-grant-context"
CONTENT_SHA256_HEADER = "x-amz-content-sha256"
DEFAULT_PROXY = "http://127.0.0.1:15080"

# The filter's local replies: {"error": CODE, "message": ...}, content-type application/json.
_ERROR_CODE = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
# AWS (and moto) answers carry a request id; the filter's local replies never do.
_AWS_RESPONSE_HEADERS = ("x-amzn-requestid", "x-amz-request-id", "x-amz-id-2", "x-amzn-errortype")
# Local replies are small; never buffer more than this to look at an error body.
_MAX_ERROR_BODY = 64 * 1024
_HASH_CHUNK = 1024 * 1024
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class GrantSigV4Error(Exception):
    """A refusal by the grant-sigv4 filter (or by this client before sending).

    ``code`` is the filter's stable error code (``GrantMissing``, ``GrantInvalid``,
    ``GrantNotFound``, ``VaultUnavailable``, ``NotAwsEndpoint``, ``PayloadHashRequired``, ...),
    ``status`` the HTTP status of the local reply (``None`` when refused client-side), and
    ``retryable`` is true for 503 (``VaultUnavailable``, ``VaultBusy``). AWS's own errors are never turned into
    this exception: boto3 clients raise ``botocore.exceptions.ClientError`` for them and
    :func:`request` returns them as ordinary responses.
    """

    def __init__(self, code: str, message: str, status: Optional[int] = None,
                 headers: Optional[Mapping[str, str]] = None):
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.headers = dict(headers or {})

    @property
    def retryable(self) -> bool:
        return self.status == 503


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    get = getattr(headers, "get", None)
    value = get(name) if get else None
    if value is not None:
        return value
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def parse_filter_error(status: int, headers: Mapping[str, str], body: bytes) -> Optional[GrantSigV4Error]:
    """The filter's local reply as an exception, or ``None`` for anything else (AWS errors)."""
    if status < 400 or not body or len(body) > _MAX_ERROR_BODY:
        return None
    ctype = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return None
    if any(_header(headers, h) is not None for h in _AWS_RESPONSE_HEADERS):
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or set(doc) != {"error", "message"}:
        return None
    code, message = doc["error"], doc["message"]
    if not isinstance(code, str) or not isinstance(message, str) or not _ERROR_CODE.match(code):
        return None
    return GrantSigV4Error(code, message, status=status, headers=dict(headers.items()))


def _check_header_value(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        raise ValueError(f"{name} must be printable ASCII (it is sent as the {name} header)")
    return value


def grant_headers(grant_id: Optional[str], reason: Optional[str] = None,
                  context: Optional[Mapping[str, Any]] = None) -> dict:
    """The request headers for a grant: ``x-grant-id``, and optionally ``x-grant-reason`` and
    ``x-grant-context`` (the context as compact JSON).

    A missing or empty grant id is refused here, before anything is sent, with the code the
    filter itself would answer (``GrantMissing`` / ``GrantInvalid``). The full grant id rules
    (1 to 128 of ``A-Z a-z 0-9 - _ .``) are left to the filter, which is authoritative.
    """
    if grant_id is None:
        raise GrantSigV4Error("GrantMissing", "no grant id given: pass the grant id of the AWS credential")
    if not isinstance(grant_id, str):
        raise TypeError(f"grant_id must be a str, not {type(grant_id).__name__}")
    if not grant_id.strip() or any(ord(c) < 0x21 or ord(c) > 0x7E for c in grant_id):
        raise GrantSigV4Error("GrantInvalid", "the grant id is empty or holds spaces or control characters")
    headers = {GRANT_HEADER: grant_id}
    if reason is not None:
        headers[REASON_HEADER] = _check_header_value("reason", reason)
    if context is not None:
        if not isinstance(context, Mapping):
            raise TypeError("context must be a dict")
        # ensure_ascii keeps any non-ASCII text header-safe (as \\u escapes).
        headers[CONTEXT_HEADER] = json.dumps(dict(context), separators=(",", ":"), sort_keys=True,
                                             ensure_ascii=True, default=str)
    return headers


def body_sha256(body: Any) -> Optional[str]:
    """Hex SHA-256 of a request body that is already at hand: bytes, str (UTF-8, as botocore
    signs it), or a seekable file-like object (read from its position, then put back).
    ``None`` when it cannot be known without consuming the body (a non-seekable stream)."""
    if body is None:
        return _EMPTY_SHA256
    if isinstance(body, (bytes, bytearray, memoryview)):
        return hashlib.sha256(body).hexdigest()
    if isinstance(body, str):
        return hashlib.sha256(body.encode("utf-8")).hexdigest()
    read, seek, tell = (getattr(body, n, None) for n in ("read", "seek", "tell"))
    if not (callable(read) and callable(seek) and callable(tell)):
        return None
    seekable = getattr(body, "seekable", None)
    try:
        if callable(seekable) and not seekable():
            return None
        start = tell()
    except (OSError, ValueError):
        return None
    h = hashlib.sha256()
    try:
        while True:
            chunk = read(_HASH_CHUNK)
            if not chunk:
                break
            h.update(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
    finally:
        seek(start)
    return h.hexdigest()


def _set_content_sha256(headers, body) -> None:
    if _header(headers, CONTENT_SHA256_HEADER) is not None:
        return  # the caller's value (e.g. UNSIGNED-PAYLOAD for S3) wins
    digest = body_sha256(body)
    if digest is not None:
        headers[CONTENT_SHA256_HEADER] = digest


# ---------------------------------------------------------------------------------------------
# boto3


def _http_endpoint(session, service_name: str, region_name: str) -> str:
    """botocore's own endpoint for the service and region, with scheme http (Envoy originates
    TLS)."""
    from botocore import UNSIGNED
    from botocore.config import Config

    probe = session.client(service_name, region_name=region_name,
                           config=Config(signature_version=UNSIGNED))
    parts = urlsplit(probe.meta.endpoint_url)
    host = parts.hostname or ""
    netloc = host if parts.port in (None, 80, 443) else f"{host}:{parts.port}"
    return urlunsplit(("http", netloc, parts.path, "", ""))


def boto3_client(service_name: str, grant_id: str, region_name: str = "us-east-1",
                 timeout: Optional[float] = None, reason: Optional[str] = None,
                 context: Optional[Mapping[str, Any]] = None, proxy: Optional[str] = DEFAULT_PROXY,
                 endpoint_url: Optional[str] = None, config=None, session=None):
    """A normal boto3 client whose requests are sent unsigned, with the grant headers, to
    ``http://<botocore's endpoint host>`` through the egress proxy, and signed by Envoy.

    - ``proxy``: the Envoy listener used as an HTTP proxy; ``None`` to send directly (an Istio
      sidecar intercepts ``http://SERVICE.REGION.amazonaws.com`` itself).
    - ``endpoint_url``: use this endpoint instead of botocore's (keep it ``http://``).
    - ``timeout``: connect and read timeout in seconds.
    - ``config``: an extra ``botocore.config.Config`` merged over the defaults (retries, S3
      addressing style, ...); the signature version stays ``UNSIGNED``. S3 defaults to
      path-style addressing (one host per region, which one Istio ServiceEntry covers).
    - ``x-amz-content-sha256`` is set to the SHA-256 of the body botocore already holds, so
      Envoy need not buffer and hash it.

    AWS errors raise ``botocore.exceptions.ClientError`` as usual; the filter's own refusals
    raise :class:`GrantSigV4Error`.
    """
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    headers = grant_headers(grant_id, reason, context)
    session = session or boto3.session.Session()
    if endpoint_url is None:
        endpoint_url = _http_endpoint(session, service_name, region_name)

    base = Config(proxies={"http": proxy} if proxy else None, s3={"addressing_style": "path"})
    if timeout is not None:
        base = base.merge(Config(connect_timeout=timeout, read_timeout=timeout))
    if config is not None:
        base = base.merge(config)
    base = base.merge(Config(signature_version=UNSIGNED))

    client = session.client(service_name, region_name=region_name, endpoint_url=endpoint_url, config=base)

    def before_send(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
        _set_content_sha256(request.headers, request.body)

    def before_parse(response_dict, **_):
        err = parse_filter_error(response_dict.get("status_code", 0), response_dict.get("headers", {}),
                                 response_dict.get("body") or b"")
        if err is not None:
            raise err

    client.meta.events.register("before-send", before_send, unique_id="grant-sigv4-before-send")
    client.meta.events.register("before-parse", before_parse, unique_id="grant-sigv4-before-parse")
    return client


# ---------------------------------------------------------------------------------------------
# raw HTTP

_managers: dict = {}
_managers_lock = threading.Lock()


def _pool(proxy: Optional[str]):
    import urllib3

    with _managers_lock:
        m = _managers.get(proxy)
        if m is None:
            m = urllib3.ProxyManager(proxy) if proxy else urllib3.PoolManager()
            _managers[proxy] = m
        return m


class Response:
    """The answer to :func:`request`: ``status``, ``headers`` (case-insensitive), ``read()``,
    ``stream()``; use as a context manager (or call ``close()``) when streaming."""

    def __init__(self, raw, prefetched: Optional[bytes] = None):
        self._raw = raw
        self._prefetched = prefetched
        self.status: int = raw.status
        self.headers = raw.headers
        self.reason = raw.reason

    def read(self, amt: Optional[int] = None) -> bytes:
        if self._prefetched is not None:
            if amt is None:
                data, self._prefetched = self._prefetched, b""
            else:
                data, self._prefetched = self._prefetched[:amt], self._prefetched[amt:]
            return data
        return self._raw.read(amt) if amt is not None else self._raw.read()

    @property
    def data(self) -> bytes:
        return self.read()

    def stream(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        if self._prefetched is not None:
            data, self._prefetched = self._prefetched, b""
            for i in range(0, len(data), chunk_size):
                yield data[i:i + chunk_size]
            return
        yield from self._raw.stream(chunk_size)

    def close(self) -> None:
        self._raw.release_conn()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request(method: str, url: str, grant_id: str, headers: Optional[Mapping[str, str]] = None,
            body: Any = None, reason: Optional[str] = None, context: Optional[Mapping[str, Any]] = None,
            proxy: Optional[str] = DEFAULT_PROXY, timeout: Optional[float] = None,
            stream: bool = False) -> Response:
    """One raw HTTP request to an AWS endpoint (``http://SERVICE.REGION.amazonaws.com/...``)
    through the egress proxy, signed by Envoy.

    ``stream=True`` leaves the body unread (``preload_content=False``): iterate
    ``response.stream()`` for multi-GB downloads and close the response. ``x-amz-content-sha256``
    is set for bytes/str bodies (and seekable files). Redirects are not followed and nothing
    is retried. The filter's refusals raise :class:`GrantSigV4Error`; AWS errors are returned
    as responses (check ``status``).
    """
    import urllib3

    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError("use an http:// URL: Envoy signs the plain request and originates TLS to AWS")
    all_headers = dict(headers or {})
    all_headers.update(grant_headers(grant_id, reason, context))
    if body is not None or method.upper() not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        _set_content_sha256(all_headers, body)
    t = urllib3.Timeout(connect=timeout, read=timeout) if timeout is not None else urllib3.Timeout.DEFAULT_TIMEOUT
    raw = _pool(proxy).request(method.upper(), url, headers=all_headers, body=body, timeout=t,
                               retries=False, redirect=False, preload_content=not stream)
    if raw.status >= 400 and "json" in (raw.headers.get("content-type") or "").lower():
        if stream:
            length = raw.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) <= _MAX_ERROR_BODY:
                data = raw.read()
                err = parse_filter_error(raw.status, raw.headers, data)
                if err is not None:
                    raw.release_conn()
                    raise err
                return Response(raw, prefetched=data)
            return Response(raw)
        err = parse_filter_error(raw.status, raw.headers, raw.data)
        if err is not None:
            raise err
    return Response(raw) if stream else Response(raw, prefetched=raw.data)
