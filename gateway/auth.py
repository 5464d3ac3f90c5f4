"""Who may open a stream: API tokens (constant-time comparison) and the Origin allow-list."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection


def presented_token(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return conn.query_params.get("token")


def token_ok(conn: HTTPConnection, tokens: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured token (no tokens: auth is off)."""
    if not tokens:
        return True
    given = (presented_token(conn) or "").encode()
    return any(hmac.compare_digest(given, t.encode()) for t in tokens)


def origin_ok(conn: HTTPConnection, allowed: tuple[str, ...]) -> bool:
    """Same origin, an allow-listed origin, or no Origin at all (non-browser clients)."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = conn.headers.get("host", "")
    same = {f"https://{host}", f"http://{host}"}
    return origin in same or origin in allowed or "*" in allowed
