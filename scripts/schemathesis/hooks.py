"""Schemathesis hooks for scripts/openapi-check.sh (SCHEMATHESIS_HOOKS=hooks).

1. Webhook signatures. The document declares `X-Signature` as the security
   scheme `webhookSignature`; schemathesis.toml gives Schemathesis a
   placeholder for it, so Schemathesis treats the credential as configured
   and its auth checks probe the webhook without it and with a wrong one.
   The signature covers the exact bytes of the body, which exist only once
   `requests` has encoded the request, so it is computed on the prepared
   request just before it is sent: a request carrying the placeholder gets
   `t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, "<t>.<raw body>")>`
   (src/signature.rs). Requests without the placeholder (the auth probes,
   cases that leave the credential out) go out as they are.

2. Idempotency keys. The contract answers a key reused with a different
   request with 422 `idempotency_key_reused` (docs/API.md; the IETF
   Idempotency-Key draft says the same). Whether a valid request gets that
   answer depends on the requests sent before it, which a generator of
   independent requests cannot know, so Schemathesis would report valid
   requests as refused. Within a run, a key already sent with one request
   is sent again only with that same request (the replay path stays under
   test); sent with another request, it gets a suffix that makes it a new
   key. Only keys the server would accept are touched: a case whose key is
   itself the invalid part goes out as generated. The script gives every
   run a fresh database, so no key is known to the server beforehand.

3. Sale windows. A product's `sale_ends_at` must be after its
   `sale_starts_at` (422 `validation_failed` otherwise, as the document's
   422 says). JSON Schema cannot compare two fields, so the document cannot
   state it and Schemathesis would send windows that end before they
   start as valid data. And a PATCH that names one bound is checked
   against the other as stored, which depends on the cases sent before.
   So on `POST /api/v1/admin/products` and
   `PATCH /api/v1/admin/products/{id}`, two valid bounds out of order are
   swapped (or, equal to the millisecond the server keeps, the end is
   dropped), and a PATCH that names only one bound also clears the other
   (`null`). Bounds that are themselves invalid (not RFC 3339 date-times)
   go out as generated. Everything else about these requests, the years
   the server accepts included, is left to the document.
"""

import hashlib
import hmac
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone

import requests.adapters
import schemathesis

PLACEHOLDER = os.environ["WEBHOOK_SIGNATURE_PLACEHOLDER"]
SECRET = os.environ["WEBHOOK_SECRET"].encode()

# -- 1. Webhook signatures ---------------------------------------------------


def signature(body: bytes, t: int) -> str:
    digest = hmac.new(SECRET, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


_send = requests.adapters.HTTPAdapter.send


def _send_signed(self, request, *args, **kwargs):
    if request.headers.get("X-Signature") == PLACEHOLDER:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        request.headers["X-Signature"] = signature(body, int(time.time()))
    return _send(self, request, *args, **kwargs)


requests.adapters.HTTPAdapter.send = _send_signed

# -- 2. Idempotency keys -----------------------------------------------------

_sent = {}
_sent_lock = threading.Lock()


def _whole(value):
    """The server's reading of an integer field (3 and 3.0 are one value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _uuid(value):
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


# What the server fingerprints as "the same request", per route.
REQUESTS = {
    "/api/v1/holds": lambda body: (_whole(body.get("product_id")), _whole(body.get("qty"))),
    "/api/v1/orders": lambda body: (_uuid(body.get("hold_id")),),
    "/api/v1/payments/webhook": lambda body: (_uuid(body.get("order_id")), body.get("status")),
}


def _header_key(value):
    """The key the server reads from `Idempotency-Key`, or None if it refuses it."""
    if not isinstance(value, str):
        return None
    key = value.strip(" \t")
    if not key or len(key) > 255 or any(c != "\t" and not " " <= c <= "~" for c in key):
        return None
    return key


# Rust's `char::is_whitespace` (Unicode White_Space), which the server's
# "not blank" uses; Python's `str.isspace` differs (it takes U+001C-U+001F).
WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _body_key(value):
    """The webhook's `idempotency_key`, or None if the server refuses it."""
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        return None
    if all(c in WHITE_SPACE for c in value):
        return None
    return value


def _claim(route, key, request):
    """`key`, or a new key if `key` was already sent with another request."""
    with _sent_lock:
        taken = _sent.setdefault(route, {})
        n = 0
        candidate = key
        while candidate in taken and taken[candidate] != request:
            n += 1
            suffix = f"~{n}"
            candidate = key[: 255 - len(suffix)] + suffix
        taken[candidate] = request
        return candidate


# -- 3. Sale windows ---------------------------------------------------------

WINDOWED = {("POST", "/api/v1/admin/products"), ("PATCH", "/api/v1/admin/products/{id}")}

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _instant(value):
    """The instant the server would store (UTC, to the millisecond), or None."""
    if not isinstance(value, str) or not RFC3339.match(value):
        return None
    try:
        at = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        at = at.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _ordered_window(body, patch):
    """`body` with its sale window in order (see the module's docstring)."""
    starts, ends = "sale_starts_at", "sale_ends_at"
    if patch and (starts in body) != (ends in body):
        return {**body, (ends if starts in body else starts): None}
    start, end = _instant(body.get(starts)), _instant(body.get(ends))
    if start is None or end is None or end > start:
        return body
    if end == start:
        return {**body, ends: None}
    return {**body, starts: body[ends], ends: body[starts]}


@schemathesis.hook
def before_call(context, case, kwargs):
    method = case.operation.method.upper()
    if (method, case.operation.path) in WINDOWED:
        if isinstance(case.body, Mapping):
            case.body = _ordered_window(dict(case.body), method == "PATCH")
        return
    if method != "POST" or case.operation.path not in REQUESTS:
        return
    body = case.body if isinstance(case.body, Mapping) else None
    if body is None:
        return
    request = REQUESTS[case.operation.path](body)
    if None in request:
        return  # the body is refused before any key is looked at
    request = json.dumps(request)
    if case.operation.path == "/api/v1/payments/webhook":
        key = _body_key(body.get("idempotency_key"))
        if key is not None:
            claimed = _claim(case.operation.path, key, request)
            if claimed != key:
                case.body = {**body, "idempotency_key": claimed}
        return
    headers = case.headers or {}
    name = next((n for n in headers if n.lower() == "idempotency-key"), None)
    key = _header_key(headers[name]) if name else None
    if key is not None:
        claimed = _claim(case.operation.path, key, request)
        if claimed != key:
            case.headers[name] = claimed
