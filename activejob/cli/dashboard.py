"""`activejob dashboard`: the web dashboard, refused on an address others can reach unless
something protects it."""

from __future__ import annotations

import importlib
from typing import Any

import click

from .options import auto_migrate_option, import_modules, imports_option, open_queue, url_option


def _loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hook(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise click.BadParameter("use module:function", param_hint="--authorize")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as error:
        raise click.BadParameter(f"cannot load {spec!r}: {error}", param_hint="--authorize") from None
    if not callable(found):
        raise click.BadParameter(f"{spec!r} is not callable", param_hint="--authorize")
    return found


@click.command()
@url_option
@imports_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but loopback needs --token or --authorize.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--token", envvar="ACTIVEJOB_DASHBOARD_TOKEN", default=None, show_envvar=True,
              help="Secret every page, API call and WebSocket must present (open the dashboard with ?token=...).")
@click.option("--authorize", "authorize_spec", default=None, metavar="MODULE:FUNCTION",
              help="Your own check: a function (request) -> bool, sync or async.")
@click.option("--root-path", default="",
              help="URL prefix the proxy serves the dashboard under; the proxy strips it, the app answers at /.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A host name browsers reach the dashboard by (repeatable; '*.example.com', '*' for any). "
                   "Default: localhost, 127.0.0.1, [::1] and the --host address; other Host headers get a 400.")
@auto_migrate_option
def dashboard(database_url: str | None, imports: tuple[str, ...], host: str, port: int, token: str | None,
              authorize_spec: str | None, root_path: str, allowed_hosts: tuple[str, ...],
              auto_migrate: bool | None = None) -> None:
    """Serve the web dashboard, REST API and WebSocket (needs the `web` extra)."""
    import_modules(imports)
    hook = _hook(authorize_spec) if authorize_spec else None
    if not _loopback(host) and not token and hook is None:
        raise click.ClickException(
            f"refusing to serve the dashboard on {host} without protection: pass --token (or set "
            "ACTIVEJOB_DASHBOARD_TOKEN) or --authorize, or bind 127.0.0.1")
    try:
        import uvicorn

        from ..web import create_app
        from ..web.hosts import dashboard_url, normalize_patterns, served_hosts
    except ImportError as error:
        raise click.ClickException(
            f"the dashboard needs the web extra: pip install 'activejob[web]' ({error})") from None
    wildcard = host in ("0.0.0.0", "::", "")
    # The address it binds to is always a name it is served as (and loopback's names when
    # loopback reaches it), beside the names given.
    hosts = served_hosts(host, allowed_hosts)
    try:
        checked = normalize_patterns(hosts)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--allowed-host") from None
    app = create_app(open_queue(database_url, auto_migrate=auto_migrate), token=token, authorize=hook,
                     allowed_hosts=checked)
    if wildcard and not allowed_hosts:
        click.echo(f"note: only requests for localhost are answered; add --allowed-host NAME for each name "
                   f"browsers reach {host} by", err=True)
    token_hint = "?token=<your token>" if token else ""
    click.echo(f"activejob dashboard: {dashboard_url(host, port, root_path)}{token_hint}")
    uvicorn.run(app, host=host, port=port, root_path=root_path, log_level="warning")
