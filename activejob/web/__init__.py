"""The dashboard, REST API and WebSocket API of activejob (install the `web` extra).

    from activejob.web import create_app

    app.mount("/jobs", create_app(token="a long secret"))    # inside your own ASGI app
    # or alone:  activejob dashboard --database-url sqlite:///jobs.db --import myapp.jobs

    app.mount("/jobs", create_app(token=..., secret=JOBS_SECRET))   # with viewer tokens:
    viewer_token(JOBS_SECRET, owner=str(user.id), ttl=3600)          # for that user's browser
"""

from .app import create_app
from .security import InvalidViewerToken, Scope, read_viewer_token, viewer_token

__all__ = ["InvalidViewerToken", "Scope", "create_app", "read_viewer_token", "viewer_token"]
