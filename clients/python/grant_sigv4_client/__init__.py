"""Helpers for applications that call AWS through Envoy with the grant-sigv4 filter.

The application holds no AWS key: it sends plain, unsigned HTTP requests to
``http://SERVICE.REGION.amazonaws.com`` with an ``x-grant-id`` header, through the egress
Envoy (as an HTTP proxy, or transparently in an Istio mesh with ``proxy=None``). Envoy fetches
the grant's key from the vault, signs with SigV4 and originates TLS to AWS.

- :func:`boto3_client` returns a normal boto3 client (pagination, waiters,
  ``botocore.exceptions.ClientError`` for AWS errors).
- :func:`request` makes one raw HTTP call and can stream multi-GB responses.
- :class:`GrantSigV4Error` is raised for the filter's own refusals (``GrantMissing``,
  ``GrantNotFound``, ``VaultUnavailable``, ...), never for AWS errors.
"""

from ._core import (
    CONTENT_SHA256_HEADER,
    CONTEXT_HEADER,
    DEFAULT_PROXY,
    GRANT_HEADER,
    REASON_HEADER,
    GrantSigV4Error,
    Response,
    boto3_client,
    grant_headers,
    request,
)

__all__ = [
    "CONTENT_SHA256_HEADER",
    "CONTEXT_HEADER",
    "DEFAULT_PROXY",
    "GRANT_HEADER",
    "REASON_HEADER",
    "GrantSigV4Error",
    "Response",
    "boto3_client",
    "grant_headers",
    "request",
]
__version__ = "0.1.0"
