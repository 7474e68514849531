"""The dashboard, REST API and WebSocket API of activejob (install the `web` extra).

    from activejob.web import create_app

    app.mount("/jobs", create_app(token="a long secret"))    # inside your own ASGI app
    # or alone:  activejob dashboard --database-url sqlite:///jobs.db --import myapp.jobs
"""

from .app import create_app

__all__ = ["create_app"]
