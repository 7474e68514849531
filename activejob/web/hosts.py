"""`HostCheck`: the dashboard answers only requests for the host names it is served as.

DNS rebinding: a page on `evil.example` re-points that name at 127.0.0.1 and then reads
the dashboard as *its own* origin — same-origin checks, SameSite cookies and the CSRF
cookie all pass, because for the browser it is evil.example. Only the `Host` header tells:
it still says `evil.example`. So every request and WebSocket must name an allowed host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")

REFUSED = ("Invalid Host header{shown}: this dashboard answers only the host names it is served as "
           "(localhost by default). If this is one, add it to create_app(allowed_hosts=[...]) "
           "or `activejob dashboard --allowed-host NAME`.")


def host_name(header: str | None) -> str | None:
    """The host of a `Host` header, lower-case, without port or trailing dot (IPv6 keeps its
    brackets); None when it is missing or malformed."""
    if not header:
        return None
    value = header.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
        return _bracketed(name)
    name, colon, port = value.partition(":")
    if not name or (colon and not port.isdigit()):
        return None
    return name.rstrip(".") or None


def _bracketed(address: str) -> str | None:
    """An IPv6 address as a Host header names it: compressed (one spelling to compare), in brackets."""
    try:
        return f"[{ipaddress.IPv6Address(address).compressed}]"
    except ValueError:
        return None


def normalize_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """Allowed-host patterns, checked: a name, an IP, `*.example.com` or `*` (any host)."""
    if isinstance(patterns, str):
        raise TypeError("allowed_hosts takes a list of host names, not one string")
    out = []
    for raw in patterns:
        pattern = raw.strip().lower()
        if ":" in pattern:  # an IPv6 address, bare or in brackets; anything else has a port
            found = _bracketed(pattern.removeprefix("[").removesuffix("]"))
            if found is None:
                raise ValueError(f"allowed host {raw!r}: give the host name without a port")
            pattern = found
        elif pattern != "*":
            pattern = pattern.rstrip(".")  # "*." must not become "*", which allows any host
            wildcard = pattern.removeprefix("*.")
            if not wildcard or "*" in wildcard or wildcard.startswith("."):
                raise ValueError(f"allowed host {raw!r}: use a name, an IP address, '*.example.com' or '*'")
        out.append(pattern)
    if not out:
        raise ValueError("allowed_hosts is empty, so nothing could reach the dashboard: "
                         "leave it out for localhost only, or pass ['*'] to answer any host")
    return tuple(out)


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    return any(pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
               for pattern in patterns)


class HostCheck:
    """ASGI middleware: a 400 for any request, WebSocket included, naming a host that is
    not allowed. `allowed_hosts=None`: the loopback names only."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str] | None = None) -> None:
        self.app = app
        self.patterns = LOOPBACK if allowed_hosts is None else normalize_patterns(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.patterns:
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host")
        host = host_name(header)
        if host is not None and host_allowed(host, self.patterns):
            await self.app(scope, receive, send)
            return
        message = REFUSED.format(shown=f" {host!r}" if host else "")
        if scope["type"] == "websocket" and "websocket.http.response" not in (scope.get("extensions") or {}):
            # The server cannot answer a WebSocket with an HTTP response: close it, saying why.
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid Host header"})
            return
        response = PlainTextResponse(message, status_code=400, headers={"X-Content-Type-Options": "nosniff"})
        await response(scope, receive, send)
