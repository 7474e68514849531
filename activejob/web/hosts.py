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
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .jsonio import JSONResponse
from .security import is_api

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "[::]", "")

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


def is_loopback(address: str) -> bool:
    """Whether a bind address (`--host`) is this machine's loopback: localhost, 127.x, ::1."""
    if address.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def served_hosts(bound: str, allowed: Sequence[str] = ()) -> list[str]:
    """The host names a dashboard bound to `bound` (uvicorn's `--host`) answers: the names
    given (`--allowed-host`), always the bound address itself, and the loopback names when it
    listens on loopback (a loopback address, or a wildcard such as 0.0.0.0, which includes it).

        served_hosts("192.0.2.2", ["jobs.example.com"]) == ["jobs.example.com", "192.0.2.2"]
        served_hosts("127.0.0.2") == ["localhost", "127.0.0.1", "[::1]", "127.0.0.2"]

    A bind address is a name the dashboard is reached by, so naming others must not drop it
    (the `--allowed-host` help and docs say it is added); the result is for create_app's
    `allowed_hosts`, which checks it."""
    names = list(allowed)
    address = bound.strip()
    wildcard = address in WILDCARDS
    if wildcard or is_loopback(address):
        names += [name for name in LOOPBACK if name not in names]
    if ":" in address:  # IPv6: as a Host header names it, in brackets
        address = _bracketed(address.strip("[]")) or address
    if not wildcard and address not in names:
        names.append(address)
    return names


def url_host(bound: str) -> str:
    """The host to print in the dashboard's URL for a bind address: `localhost` where that
    name reaches the server (127.0.0.1, localhost, a wildcard bind), else the address bound
    (127.0.0.2: only that address answers; IPv6 in brackets)."""
    address = bound.strip()
    if address in WILDCARDS or address in ("127.0.0.1", "localhost"):
        return "localhost"
    bare = address.strip("[]")
    try:
        return f"[{ipaddress.IPv6Address(bare).compressed}]"
    except ValueError:
        return address


def dashboard_url(bound: str, port: int, root_path: str = "") -> str:
    """The URL `activejob dashboard` prints: one a browser on this machine can open."""
    return f"http://{url_host(bound)}:{port}{root_path.rstrip('/')}/"


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    return any(pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
               for pattern in patterns)


class HostCheck:
    """ASGI middleware: a 400 for any request, WebSocket included, naming a host that is
    not allowed (JSON under /api/, like every API error). `allowed_hosts=None`: the
    loopback names only."""

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
        headers = {"X-Content-Type-Options": "nosniff"}
        response: Response = (JSONResponse({"error": message}, status_code=400, headers=headers) if is_api(scope)
                              else PlainTextResponse(message, status_code=400, headers=headers))
        await response(scope, receive, send)
