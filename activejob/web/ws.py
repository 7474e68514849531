"""The WebSocket API (`/api/ws`): live events, by job, by owner or all of them.

Client to server (JSON text frames):

    {"action": "subscribe", "job_id": 42}                 one job's events
    {"action": "subscribe", "batch_id": 7}                a batch's events and its members'
    {"action": "subscribe", "owner": "alice"}             the events of an owner's jobs
    {"action": "subscribe"}                               everything
    {"action": "subscribe", "job_id": 42, "since": 1234}  first replay what came after event 1234
    {"action": "unsubscribe", "job_id": 42}               (or "batch_id", "owner", or nothing for all)
    {"action": "ping"}

Server to client:

    {"type": "subscribed", "subscription": "job:42", "cursor": 1234}
    {"type": "event", "subscription": "job:42", "id": 1240, "cursor": 1240, "event": "progress",
     "job_id": 42, "name": "import_rows", "queue": "default", "owner": null, "status": "running",
     "attempt": 1, "created_at": "...", "data": {"progress": 0.5, "message": "...", ...}}
    {"type": "unsubscribed", "subscription": "job:42"}
    {"type": "pong"}
    {"type": "error", "error": "..."}

Resume after a disconnect with `since` = the last `cursor` received: nothing is lost; an
event may come again (skip it by `id`).

A batch's own events (`batch_failed`, `batch_finished`, `batch_cancelled`) have `job_id`
null and `batch_id` set; a member's events carry their `batch_id` too.

A viewer (a viewer token, or an authorize hook that returned a scope) may subscribe only to
its own jobs, its own owner's batches and its own owner's room; anything else gets an `error` frame. When its token
expires the socket is closed (code 4401, reason "the viewer token has expired").

Every connection has at most MAX_SUBSCRIPTIONS subscriptions and a token bucket of
MESSAGES_PER_SECOND messages (bursts of MESSAGE_BURST): a message over the rate gets an
`error` frame and is not acted on; after MAX_STRIKES of those the socket is closed (code
1008, reason "too many messages").
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import anyio
from anyio.abc import TaskGroup
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .. import clock
from ..relay import Subscription, subscription_key
from . import jsonio
from .core import dashboard
from .security import Scope, viewer

log = logging.getLogger("activejob.web")

MAX_SUBSCRIPTIONS = 200
MAX_MESSAGE = 4096
MESSAGES_PER_SECOND = 20.0
MESSAGE_BURST = 60
MAX_STRIKES = 50
RATE_LIMIT_CLOSE = 1008  # policy violation
EXPIRED_CLOSE = 4401


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `take()` is False when none is left."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = clock.monotonic()

    def take(self) -> bool:
        now = clock.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _Connection:
    def __init__(self, ws: WebSocket, tg: TaskGroup) -> None:
        self.ws = ws
        self.tg = tg
        self.lock = anyio.Lock()
        self.subs: dict[str, tuple[Subscription, anyio.CancelScope]] = {}
        self.open = True
        self.viewer: Scope | None = viewer(ws)
        self.bucket = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
        self.strikes = 0

    async def close(self, code: int, reason: str) -> None:
        """Say why in an error frame, then close the socket with that reason."""
        await self.send({"type": "error", "error": reason})
        self.open = False
        async with self.lock:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason)

    async def send(self, message: dict[str, Any]) -> None:
        if not self.open:
            return
        text = jsonio.dumps(message)
        async with self.lock:
            try:
                await self.ws.send_text(text)
            except Exception:  # the client went away while we were sending
                self.open = False

    async def pump(self, sub: Subscription, scope: anyio.CancelScope) -> None:
        with scope:
            try:
                async for item in sub:
                    if not self.open:
                        break
                    await self.send({"type": "event", "subscription": sub.key, **item.to_dict()})
            except Exception as error:  # the database went away: tell the client to resubscribe
                log.warning("subscription %s ended: %s", sub.key, error)
                await self.send({"type": "error", "error": f"subscription {sub.key} ended; subscribe again",
                                 "subscription": sub.key})
            finally:
                sub.close()

    def drop(self, key: str) -> bool:
        found = self.subs.pop(key, None)
        if found is None:
            return False
        sub, scope = found
        sub.close()
        scope.cancel()
        return True

    def drop_all(self) -> None:
        for key in list(self.subs):
            self.drop(key)


def _number(msg: dict[str, Any], field: str) -> int | None:
    value = msg.get(field)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"{field} must be a number")


def _key(msg: dict[str, Any]) -> tuple[int | None, str | None, int | None]:
    job_id, batch_id, owner = _number(msg, "job_id"), _number(msg, "batch_id"), msg.get("owner")
    if owner is not None and (not isinstance(owner, str) or len(owner) > 200):
        raise ValueError("owner must be a string")
    return job_id, owner, batch_id


async def websocket_endpoint(ws: WebSocket) -> None:
    dash = dashboard(ws)
    await ws.accept()
    relay = dash.relay
    try:
        await relay.ensure_running()
    except Exception as error:
        log.exception("the event relay cannot start")
        await ws.send_text(jsonio.dumps({"type": "error", "error": f"live events are unavailable: {error}"}))
        await ws.close(code=1011)
        return
    async with anyio.create_task_group() as tg:
        conn = _Connection(ws, tg)
        if conn.viewer is not None and conn.viewer.expires_at is not None:
            tg.start_soon(_expire, conn, conn.viewer.expires_at)
        try:
            await _serve(conn)
        finally:
            conn.open = False
            conn.drop_all()
            tg.cancel_scope.cancel()
    if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close()


async def _expire(conn: _Connection, expires_at: float) -> None:
    """Close a viewer's socket when its token expires: it may not follow events any longer."""
    await anyio.sleep(max(0.0, expires_at - clock.now().timestamp()))
    if conn.open:
        conn.drop_all()
        await conn.close(EXPIRED_CLOSE, "the viewer token has expired")
        conn.tg.cancel_scope.cancel()  # stop waiting for the client's next message


async def _refusal(conn: _Connection, scope: Scope, job_id: int | None, owner: str | None,
                   batch_id: int | None) -> str | None:
    """Why a viewer may not subscribe to this room, or None if it may."""
    queue = dashboard(conn.ws).queue
    if job_id is not None:
        if job_id in scope.job_ids:
            return None
        job = await anyio.to_thread.run_sync(queue.get_job, job_id)
        if job is not None and scope.allows(job.id, job.owner):
            return None
        return f"forbidden: job {job_id} is not one of yours"
    if batch_id is not None:
        batch = await anyio.to_thread.run_sync(queue.get_batch, batch_id)
        if batch is not None and scope.allows_batch(batch.owner):
            return None
        return f"forbidden: batch {batch_id} is not one of yours"
    if owner is not None:
        return None if owner == scope.owner else f"forbidden: you may not follow the jobs of owner {owner!r}"
    return "forbidden: a viewer may not subscribe to every job's events; subscribe to a job_id" + (
        " or to your owner" if scope.owner is not None else "")


async def _serve(conn: _Connection) -> None:
    relay = dashboard(conn.ws).relay
    while conn.open:
        try:
            text = await conn.ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return
        if not conn.bucket.take():
            conn.strikes += 1
            if conn.strikes >= MAX_STRIKES:
                await conn.close(RATE_LIMIT_CLOSE, "too many messages: closed")
                return
            await conn.send({"type": "error", "error": f"too many messages: at most {MESSAGES_PER_SECOND:g} a "
                                                       "second; this one was ignored"})
            continue
        if len(text) > MAX_MESSAGE:
            await conn.send({"type": "error", "error": "message too large"})
            continue
        try:
            msg = jsonio.loads(text)  # too deep: an error frame, and the socket stays usable
            if not isinstance(msg, dict):
                raise ValueError("send a JSON object")
            action = msg.get("action")
            if action == "ping":
                await conn.send({"type": "pong"})
                continue
            if action not in ("subscribe", "unsubscribe"):
                raise ValueError("action must be subscribe, unsubscribe or ping")
            job_id, owner, batch_id = _key(msg)
            since = msg.get("since")
            if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
                raise ValueError("since must be an event id (a whole number >= 0)")
        except ValueError as error:
            await conn.send({"type": "error", "error": str(error)})
            continue
        key = subscription_key(job_id, owner, batch_id)
        if action == "unsubscribe":
            conn.drop(key)
            await conn.send({"type": "unsubscribed", "subscription": key})
            continue
        if conn.viewer is not None:
            refused = await _refusal(conn, conn.viewer, job_id, owner, batch_id)
            if refused is not None:
                await conn.send({"type": "error", "error": refused, "subscription": key})
                continue
        conn.drop(key)  # subscribing again (a new `since`) replaces the old one
        if len(conn.subs) >= MAX_SUBSCRIPTIONS:
            await conn.send({"type": "error", "error": f"at most {MAX_SUBSCRIPTIONS} subscriptions"})
            continue
        if job_id is not None:
            batch_id = None  # the narrower room: a job's events (the key says so too)
        sub = relay.subscribe(job_id=job_id, batch_id=batch_id,
                              owner=None if job_id is not None or batch_id is not None else owner, since=since)
        scope = anyio.CancelScope()
        conn.subs[key] = (sub, scope)
        await conn.send({"type": "subscribed", "subscription": key, "cursor": sub.cursor})
        conn.tg.start_soon(conn.pump, sub, scope)
