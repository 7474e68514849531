"""Who may use the dashboard, and proof that a change was meant.

Every page, API call and WebSocket goes through `HostCheck` (hosts.py: DNS rebinding), then
`Guard` (an ASGI middleware):

- a `token` (if set) must come as `Authorization: Bearer <token>`, as the session cookie
  a first visit with `?token=<token>` sets, or (API/WebSocket clients) as `?token=`;
- then the `authorize(connection)` hook (if set) must return true (sync or async), or a
  viewer scope (an owner string or a `Scope`).

Viewer tokens (`create_app(secret=...)`, `viewer_token(secret, owner=...)`) let an
application's own users read their own jobs: a signed, expiring token, sent as `Bearer` or
`?token=`, that narrows every read to one owner's jobs (or some job ids) and refuses every
change (but cancelling its own jobs, when made with `can_cancel=True`). It stands instead
of the operators' token and hook; an expired or tampered one is a 401.

State-changing calls are POST and need CSRF proof unless they carry an `Authorization`
header (which a browser never adds on its own): the `X-CSRF-Token` header or a
`csrf_token` form field equal to the `activejob_csrf` cookie, and an `Origin`, when sent,
of this same site. WebSockets check the `Origin` too (no cross-site hijacking).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope

from .. import clock
from .jsonio import JSONResponse


@dataclass(frozen=True)
class Scope:
    """What a viewer (one of your application's users, not an operator) may see: the jobs of
    `owner`, and the jobs `job_ids` (either or both), read-only unless `can_cancel` (then
    it may cancel those jobs, and nothing else). `expires_at`: a Unix time, or None."""

    owner: str | None = None
    job_ids: frozenset[int] = frozenset()
    can_cancel: bool = False
    expires_at: float | None = None

    def __init__(self, owner: str | None = None, job_ids: Iterable[int] = (), can_cancel: bool = False,
                 expires_at: float | None = None) -> None:
        ids = frozenset(job_ids)
        if owner is not None and not isinstance(owner, str):
            raise TypeError("owner must be a string")
        if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
            raise TypeError("job_ids must be whole numbers")
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "job_ids", ids)
        object.__setattr__(self, "can_cancel", bool(can_cancel))
        object.__setattr__(self, "expires_at", expires_at)

    def allows(self, job_id: int, owner: str | None) -> bool:
        """Whether a job (its id and owner) is one this viewer may see."""
        return job_id in self.job_ids or (self.owner is not None and owner == self.owner)

    def allows_batch(self, owner: str | None) -> bool:
        """Whether a batch (by its owner, `Batch(owner=...)`) is one this viewer may see."""
        return self.owner is not None and owner == self.owner


Authorize = Callable[[HTTPConnection], "bool | str | Scope | Awaitable[bool | str | Scope]"]

VIEWER_KEY = "activejob.viewer"   # the connection's Scope, when it is a viewer's
DENIED_KEY = "activejob.denied"   # why a WebSocket was refused (its close reason)
VIEWER_PREFIX = "ajv1."
MAX_VIEWER_TOKEN = 8192


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), b"activejob-viewer:" + payload.encode(), hashlib.sha256).digest())


def viewer_token(secret: str, owner: str | None = None, *, job_ids: Iterable[int] = (), ttl: float = 3600,
                 can_cancel: bool = False) -> str:
    """A signed token that lets a browser read the jobs of `owner` (and/or the jobs
    `job_ids`) for `ttl` seconds, through the API, the WebSocket and the progress widget.

        token = viewer_token(JOBS_SECRET, owner=str(user.id), ttl=3600)

    `secret` is the one given to `create_app(secret=...)`. `can_cancel=True` also lets it
    cancel those jobs. Signed with HMAC-SHA256; it cannot be changed without the secret."""
    if not secret:
        raise ValueError("viewer_token needs the secret given to create_app(secret=...)")
    scope = Scope(owner=owner, job_ids=job_ids, can_cancel=can_cancel)
    if scope.owner is None and not scope.job_ids:
        raise ValueError("a viewer token needs an owner or some job_ids")
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    payload = {"owner": scope.owner, "job_ids": sorted(scope.job_ids), "can_cancel": scope.can_cancel,
               "exp": int(clock.now().timestamp() + ttl)}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{VIEWER_PREFIX}{body}.{_sign(secret, body)}"


class InvalidViewerToken(ValueError):
    """A viewer token that is malformed, tampered with, or expired (a 401)."""


def looks_like_viewer_token(value: str | None) -> bool:
    return value is not None and value.startswith(VIEWER_PREFIX)


def read_viewer_token(secret: str, token: str) -> Scope:
    """The scope a viewer token grants, or InvalidViewerToken."""
    if not looks_like_viewer_token(token) or len(token) > MAX_VIEWER_TOKEN:
        raise InvalidViewerToken("not a viewer token")
    body, dot, signature = token[len(VIEWER_PREFIX):].partition(".")
    if not dot or not re.fullmatch(r"[A-Za-z0-9_-]+", body) or not hmac.compare_digest(
            signature.encode(), _sign(secret, body).encode()):
        raise InvalidViewerToken("invalid viewer token (its signature does not match)")
    try:
        payload: Any = json.loads(_unb64(body))
        exp = payload["exp"]
        ids = payload.get("job_ids") or []
        scope = Scope(owner=payload.get("owner"), job_ids=ids, can_cancel=payload.get("can_cancel") is True,
                      expires_at=float(exp))
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise InvalidViewerToken(f"invalid viewer token: {error}") from None
    if clock.now().timestamp() >= exp:
        raise InvalidViewerToken("the viewer token has expired: get a new one")
    return scope


def viewer(conn: HTTPConnection) -> Scope | None:
    """The viewer scope of this request or WebSocket; None for an operator (full access)."""
    found = conn.scope.get(VIEWER_KEY)
    return found if isinstance(found, Scope) else None


def as_scope(allowed: object) -> Scope | bool:
    """What the authorize hook returned: True (an operator), a Scope, or False."""
    if isinstance(allowed, Scope):
        return allowed
    if isinstance(allowed, str):
        return Scope(owner=allowed) if allowed else False
    return bool(allowed)


# What a viewer may reach: reads of jobs and events, the WebSocket, the API description,
# and (checked again by the endpoint) cancelling a job. Everything else is a 403.
_VIEWER_GETS = re.compile(r"^/api/(jobs(/\d+(/events|/explain)?)?|batches(/\d+(/events)?)?|events|openapi\.json)/?$")
_VIEWER_CANCEL = re.compile(r"^/api/jobs/\d+/cancel/?$")
_VIEWER_WS = ("/api/ws", "/ws")

SESSION_COOKIE = "activejob_session"
CSRF_COOKIE = "activejob_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
BASE_KEY = "activejob.base"


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"activejob-dashboard-session", hashlib.sha256).hexdigest()


def base_path(scope: ASGIScope) -> str:
    """The path this app is mounted at ("" at the root), whatever sub-mount a request is in."""
    return str(scope.get(BASE_KEY, scope.get("root_path")) or "")


def route_path(scope: ASGIScope) -> str:
    """The request's path inside this app (without the path it is mounted at)."""
    path = str(scope.get("path", ""))
    base = base_path(scope)
    return path[len(base):] if base and path.startswith(base) else path


def is_api(scope: ASGIScope) -> bool:
    """Whether a request is for the REST API (`/api/...`), which answers JSON, errors too."""
    path = route_path(scope)
    return path == "/api" or path.startswith("/api/")


def cookie_path(scope: ASGIScope) -> str:
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
                 allowed_origins: tuple[str, ...] = (), secret: str | None = None) -> None:
        self.app = app
        self.token = token
        self.authorize = authorize
        self.allowed_origins = allowed_origins
        self.secret = secret

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[BASE_KEY] = str(scope.get("root_path") or "")  # where this app is mounted
        scope.pop(VIEWER_KEY, None)  # only this Guard says who is a viewer
        scope.pop(DENIED_KEY, None)
        path = route_path(scope)
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
            reason = str(scope.get(DENIED_KEY) or ("unauthorized" if unauthorized else "forbidden"))
            await send({"type": "websocket.close", "code": 4401 if unauthorized else 4403,
                        "reason": reason[:120]})
        else:
            await denied(scope, receive, send)

    async def _check(self, conn: HTTPConnection, path: str, is_ws: bool) -> Response | None:
        wants_html = not is_ws and not path.startswith("/api") and "text/html" in conn.headers.get("accept", "")
        if is_ws and not same_origin(conn, self.allowed_origins):
            return PlainTextResponse("cross-site WebSocket refused", status_code=403)
        presented = self._presented(conn)
        if looks_like_viewer_token(presented) and self.secret is not None:
            assert presented is not None
            try:
                scope = read_viewer_token(self.secret, presented)
            except InvalidViewerToken as error:
                conn.scope[DENIED_KEY] = str(error)
                return JSONResponse({"error": f"unauthorized: {error}"}, status_code=401,
                                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return self._as_viewer(conn, path, is_ws, scope, wants_html)
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
            granted = as_scope(allowed)
            if isinstance(granted, Scope):
                return self._as_viewer(conn, path, is_ws, granted, wants_html)
            if not granted:
                if wants_html:
                    return PlainTextResponse("You are not allowed to see this dashboard.", status_code=403)
                return JSONResponse({"error": "forbidden"}, status_code=403)
        return None

    @staticmethod
    def _presented(conn: HTTPConnection) -> str | None:
        """The token this request carries (Bearer first, then `?token=`), if any."""
        return _bearer(conn.headers) or conn.query_params.get("token")

    def _as_viewer(self, conn: HTTPConnection, path: str, is_ws: bool, scope: Scope,
                   wants_html: bool) -> Response | None:
        """Let a viewer through to the few endpoints it may use, remembering its scope."""
        conn.scope[VIEWER_KEY] = scope
        method = conn.scope.get("method")
        if is_ws:
            allowed = path in _VIEWER_WS
        elif method in ("GET", "HEAD"):
            allowed = bool(_VIEWER_GETS.match(path))
        else:
            allowed = method == "POST" and bool(_VIEWER_CANCEL.match(path)) and scope.can_cancel
        if allowed:
            return None
        message = ("forbidden: a viewer token (or a scope from the authorize hook) may only read its own jobs "
                   "and their events" + (" and cancel them" if scope.can_cancel else ""))
        conn.scope[DENIED_KEY] = message
        if wants_html:
            return PlainTextResponse("The dashboard's pages are for operators; a viewer reads its own jobs "
                                     "through the API and the progress widget.", status_code=403)
        return JSONResponse({"error": message}, status_code=403)

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
    if looks_like_viewer_token(request.query_params.get("token")) and viewer(request) is not None:
        return  # the signed token in the URL is itself the proof: another site cannot know it
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
