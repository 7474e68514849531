"""The WebSocket API (`/api/ws`): live events, by job, by owner or all of them.

Client to server (JSON text frames):

    {"action": "subscribe", "job_id": 42}                 one job's events
    {"action": "subscribe", "owner": "alice"}             the events of an owner's jobs
    {"action": "subscribe"}                               everything
    {"action": "subscribe", "job_id": 42, "since": 1234}  first replay what came after event 1234
    {"action": "unsubscribe", "job_id": 42}               (or "owner", or nothing for everything)
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
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import anyio
from anyio.abc import TaskGroup
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..relay import Subscription, subscription_key
from . import jsonio
from .core import dashboard

log = logging.getLogger("activejob.web")

MAX_SUBSCRIPTIONS = 200
MAX_MESSAGE = 4096


class _Connection:
    def __init__(self, ws: WebSocket, tg: TaskGroup) -> None:
        self.ws = ws
        self.tg = tg
        self.lock = anyio.Lock()
        self.subs: dict[str, tuple[Subscription, anyio.CancelScope]] = {}
        self.open = True

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


def _key(msg: dict[str, Any]) -> tuple[int | None, str | None]:
    job_id, owner = msg.get("job_id"), msg.get("owner")
    if job_id is not None and (isinstance(job_id, bool) or not isinstance(job_id, int)):
        if isinstance(job_id, str) and job_id.isdigit():
            job_id = int(job_id)
        else:
            raise ValueError("job_id must be a number")
    if owner is not None and (not isinstance(owner, str) or len(owner) > 200):
        raise ValueError("owner must be a string")
    return job_id, owner


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
        try:
            await _serve(conn)
        finally:
            conn.open = False
            conn.drop_all()
            tg.cancel_scope.cancel()
    if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close()


async def _serve(conn: _Connection) -> None:
    relay = dashboard(conn.ws).relay
    while conn.open:
        try:
            text = await conn.ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return
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
            job_id, owner = _key(msg)
            since = msg.get("since")
            if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
                raise ValueError("since must be an event id (a whole number >= 0)")
        except ValueError as error:
            await conn.send({"type": "error", "error": str(error)})
            continue
        key = subscription_key(job_id, owner)
        if action == "unsubscribe":
            conn.drop(key)
            await conn.send({"type": "unsubscribed", "subscription": key})
            continue
        conn.drop(key)  # subscribing again (a new `since`) replaces the old one
        if len(conn.subs) >= MAX_SUBSCRIPTIONS:
            await conn.send({"type": "error", "error": f"at most {MAX_SUBSCRIPTIONS} subscriptions"})
            continue
        sub = relay.subscribe(job_id=job_id, owner=None if job_id is not None else owner, since=since)
        scope = anyio.CancelScope()
        conn.subs[key] = (sub, scope)
        await conn.send({"type": "subscribed", "subscription": key, "cursor": sub.cursor})
        conn.tg.start_soon(conn.pump, sub, scope)
