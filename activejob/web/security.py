"""Who may use the dashboard, and proof that a change was meant.

Every page, API call and WebSocket goes through `HostCheck` (hosts.py: DNS rebinding), then
`Guard` (an ASGI middleware):

- a `token` (if set) must come as `Authorization: Bearer <token>`, as the session cookie
  a first visit with `?token=<token>` sets, or (API/WebSocket clients) as `?token=`;
- then the `authorize(connection)` hook (if set) must return true (sync or async).

State-changing calls are POST and need CSRF proof unless they carry an `Authorization`
header (which a browser never adds on its own): the `X-CSRF-Token` header or a
`csrf_token` form field equal to the `activejob_csrf` cookie, and an `Origin`, when sent,
of this same site. WebSockets check the `Origin` too (no cross-site hijacking).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .jsonio import JSONResponse

Authorize = Callable[[HTTPConnection], "bool | Awaitable[bool]"]

SESSION_COOKIE = "activejob_session"
CSRF_COOKIE = "activejob_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
BASE_KEY = "activejob.base"


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"activejob-dashboard-session", hashlib.sha256).hexdigest()


def base_path(scope: Scope) -> str:
    """The path this app is mounted at ("" at the root), whatever sub-mount a request is in."""
    return str(scope.get(BASE_KEY, scope.get("root_path")) or "")


def cookie_path(scope: Scope) -> str:
    return base_path(scope) or "/"


def secure_cookies(conn: HTTPConnection) -> bool:
    """Whether cookies set on this connection must be HTTPS-only (so a page served over TLS
    never leaks them to a plain-HTTP request)."""
    return conn.url.scheme in ("https", "wss")


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def same_origin(conn: HTTPConnection, allowed: tuple[str, ...] = ()) -> bool:
    """True when the request's Origin (if any) is this site or an allowed one."""
    origin = conn.headers.get("origin")
    if not origin:
        return True  # not a browser's cross-site request (those always send Origin)
    if origin in allowed:
        return True
    host = conn.headers.get("host", "")
    parsed = urlsplit(origin)
    return bool(parsed.netloc) and parsed.netloc.lower() == host.lower()


class Guard:
    """ASGI middleware: checks the token and the authorize hook before anything else.

    Static assets (`/static/...`) are public: they hold no data, and pages of the host
    application embed the progress widget from there.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, authorize: Authorize | None,
                 allowed_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.token = token
        self.authorize = authorize
        self.allowed_origins = allowed_origins

    def _route_path(self, scope: Scope) -> str:
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        return path[len(root):] if root and path.startswith(root) else path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[BASE_KEY] = str(scope.get("root_path") or "")  # where this app is mounted
        path = self._route_path(scope)
        if path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        is_ws = scope["type"] == "websocket"
        denied = await self._check(conn, path, is_ws)
        if denied is None:
            await self.app(scope, receive, send)
        elif is_ws:
            unauthorized = denied.status_code == 401
            await send({"type": "websocket.close", "code": 4401 if unauthorized else 4403,
                        "reason": "unauthorized" if unauthorized else "forbidden"})
        else:
            await denied(scope, receive, send)

    async def _check(self, conn: HTTPConnection, path: str, is_ws: bool) -> Response | None:
        wants_html = not is_ws and not path.startswith("/api") and "text/html" in conn.headers.get("accept", "")
        if is_ws and not same_origin(conn, self.allowed_origins):
            return PlainTextResponse("cross-site WebSocket refused", status_code=403)
        if self.token is not None:
            via_query = conn.query_params.get("token")
            if via_query is not None and hmac.compare_digest(via_query.encode(), self.token.encode()):
                if wants_html and conn.scope.get("method") == "GET":
                    # A person followed the link: keep a session cookie, drop the token from the URL.
                    query = urlencode([(k, v) for k, v in conn.query_params.multi_items() if k != "token"])
                    target = str(conn.scope.get("path") or "/") + (f"?{query}" if query else "")
                    redirect = RedirectResponse(target, status_code=303)
                    redirect.set_cookie(SESSION_COOKIE, session_value(self.token), httponly=True,
                                        samesite="strict", path=cookie_path(conn.scope),
                                        secure=secure_cookies(conn))
                    return redirect
            elif not self._token_ok(conn):
                if wants_html:
                    return PlainTextResponse(
                        "This dashboard needs its access token: open it once with ?token=YOUR_TOKEN.",
                        status_code=401)
                return JSONResponse({"error": "unauthorized: send the token (Authorization: Bearer ...)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if self.authorize is not None:
            allowed = self.authorize(conn)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                if wants_html:
                    return PlainTextResponse("You are not allowed to see this dashboard.", status_code=403)
                return JSONResponse({"error": "forbidden"}, status_code=403)
        return None

    def _token_ok(self, conn: HTTPConnection) -> bool:
        assert self.token is not None
        bearer = _bearer(conn.headers)
        if bearer is not None:
            return hmac.compare_digest(bearer.encode(), self.token.encode())
        cookie = conn.cookies.get(SESSION_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), session_value(self.token).encode())


def csrf_token(request: Request) -> tuple[str, bool]:
    """The CSRF token for this browser, and whether it is new (then set the cookie)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="strict", path=cookie_path(request.scope),
                        secure=secure_cookies(request))


class CSRFError(Exception):
    pass


def check_csrf(request: Request, submitted: str | None, allowed_origins: tuple[str, ...] = ()) -> None:
    """Raise CSRFError unless this POST is provably the person's own."""
    if request.headers.get("authorization"):
        return  # API clients: a browser never attaches this header to a cross-site request
    if not same_origin(request, allowed_origins):
        raise CSRFError("cross-site request refused")
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER) or submitted
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise CSRFError("missing or wrong CSRF token: reload the page and try again")


def security_headers(response: Response, *, csp: bool = True) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if csp:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    return response
