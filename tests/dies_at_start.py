"""A job module whose worker dies shortly after starting, every time (the supervisor's
give-up test): it imports fine, so it is no configuration error, and the database is there."""

from __future__ import annotations

import os
import threading

threading.Timer(0.3, lambda: os._exit(1)).start()
