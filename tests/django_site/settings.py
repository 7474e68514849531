"""Settings of the test project; the database file (or PostgreSQL URL) comes from DJANGO_SITE_DB."""

import os

SECRET_KEY = "activejob-tests"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["activejob.contrib.django", "django_site.shop"]

_db = os.environ["DJANGO_SITE_DB"]
if _db.startswith("postgresql"):
    from urllib.parse import urlsplit

    _url = urlsplit(_db.replace("postgresql+psycopg://", "postgresql://"))
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": _url.path.lstrip("/"),
                             "USER": _url.username or "", "PASSWORD": _url.password or "",
                             "HOST": _url.hostname or "", "PORT": str(_url.port or "")}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _db}}

ACTIVEJOB = {"OPTIONS": {"poll_interval": 0.05, "lease": 5, "shutdown_grace": 2}}
