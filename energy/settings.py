"""Settings of the energy telemetry engine.

Every knob is read from the environment here and nowhere else; each one is listed in the README's
configuration table and in `.env.example`. A value that does not parse stops the process at start
with a message naming the variable.
"""

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float, maximum: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name}={value} must be between {minimum} and {maximum}.")
    return value


_RATE = re.compile(r"\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*", re.IGNORECASE)
_RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def env_rate(name: str) -> tuple[int, int] | None:
    """`N/s`, `N/min`, `N/h` or `N/day` as (N, seconds); unset or empty: None (no limit)."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return None
    match = _RATE.fullmatch(raw)
    if match is None or int(match[1]) < 1:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate: use N/s, N/min, N/h or N/day with N >= 1 "
            "(e.g. 1200/min), or leave it unset for no limit."
        )
    return int(match[1]), _RATE_PERIODS[match[2][0].lower()]


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- General -------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off: export SECRET_KEY=<a long random string> "
            "(or DEBUG=true on a development machine). scripts/demo and scripts/test set it."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Before the admin: its admin/base_site.html extends the admin's, adding the dashboard link.
    "dashboard",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "fleet",
    "telemetry",
    "analytics",
    "alarms",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database fault in a page outside DRF (admin, home): 503 + Retry-After, not a 500.
    "telemetry.database_faults.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "energy.urls"
WSGI_APPLICATION = "energy.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Every time shown with its zone, in one format (`2026-11-23 10:15:00 UTC`): telemetry/formats/.
FORMAT_MODULE_PATH = ["telemetry.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # Chart.js of the dashboard, from the django-chartjs package (dashboard/finders.py).
    "dashboard.finders.ChartJsFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs each login at INFO; failures and lockouts are WARNING.
    "loggers": {"axes": {"level": "WARNING"}},
}
# httpx logs every webhook POST at INFO; deliver_notifications prints its own summary per round.
LOGGING.setdefault("loggers", {})["httpx"] = {"level": "WARNING"}

# --- Database ------------------------------------------------------------------------------------

# Unset DATABASE_URL means an embedded SQLite file, so that a newcomer's first command just works.
_SQLITE_PATH = BASE_DIR / "db" / "energy.sqlite3"
_DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{_SQLITE_PATH}"
_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 600, minimum=0)
_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
try:
    DATABASES = {"default": dj_database_url.parse(_DATABASE_URL, conn_max_age=_CONN_MAX_AGE)}
except ValueError as error:
    raise ImproperlyConfigured(f"DATABASE_URL does not parse: {error}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _SQLITE_PATH.parent.mkdir(exist_ok=True)
    # WAL lets the demo server read while a command writes.
    DATABASES["default"]["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20}
else:
    # Off by default: the check is one more round trip ("SELECT 1") on every request, which
    # costs the single-reading ingest path about a fifth of its rate. On, a connection broken by a
    # database restart is replaced before use instead of failing one request.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", False)
    # A database host that accepts no connection (down, unreachable, overloaded) costs a request
    # this many seconds before its 503, not the operating system's TCP timeout (minutes).
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = _CONNECT_TIMEOUT

# Status, history and analytics reads go through `api.routers.ReadReplicaRouter`: with
# DATABASE_REPLICA_URLS (comma-separated; DATABASE_REPLICA_URL is the one-replica spelling) they
# are spread over the streaming replicas `replica_1`, `replica_2`, ... A replica that lags more
# than DATABASE_REPLICA_MAX_LAG_SECONDS is skipped, one that refuses a connection is skipped for
# DATABASE_REPLICA_DOWN_SECONDS; each process checks a replica at most once per
# DATABASE_REPLICA_CHECK_SECONDS. With none usable the primary answers.
_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
if env_str("DATABASE_REPLICA_URL"):
    if _REPLICA_URLS:
        raise ImproperlyConfigured(
            "Set DATABASE_REPLICA_URLS or DATABASE_REPLICA_URL (one replica), not both."
        )
    _REPLICA_URLS = [env_str("DATABASE_REPLICA_URL").strip()]
if _REPLICA_URLS and DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL.")
for _number, _url in enumerate(_REPLICA_URLS, start=1):
    try:
        _replica = dj_database_url.parse(_url, conn_max_age=_CONN_MAX_AGE)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"DATABASE_REPLICA_URLS item {_number} does not parse: {error}"
        ) from None
    if _replica["ENGINE"] != DATABASES["default"]["ENGINE"]:
        raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS item {_number} is not PostgreSQL.")
    _replica["TEST"] = {"MIRROR": "default"}
    _replica["CONN_HEALTH_CHECKS"] = DATABASES["default"]["CONN_HEALTH_CHECKS"]
    _replica.setdefault("OPTIONS", {})["connect_timeout"] = _CONNECT_TIMEOUT
    DATABASES[f"replica_{_number}"] = _replica
DATABASE_ROUTERS = ["api.routers.ReadReplicaRouter"]
DATABASE_REPLICA_MAX_LAG_SECONDS = env_float(
    "DATABASE_REPLICA_MAX_LAG_SECONDS", 5.0, minimum=0.0, maximum=86400.0
)
DATABASE_REPLICA_CHECK_SECONDS = env_float(
    "DATABASE_REPLICA_CHECK_SECONDS", 1.0, minimum=0.0, maximum=60.0
)
DATABASE_REPLICA_DOWN_SECONDS = env_float(
    "DATABASE_REPLICA_DOWN_SECONDS", 5.0, minimum=0.0, maximum=3600.0
)

# Transaction pooling (pgbouncer `pool_mode = transaction`, or any pooler that hands each
# transaction a server connection of its choice): no prepared statements kept on a connection
# (psycopg prepares after 5 runs otherwise) and no server-side cursors (a named cursor lives only
# as long as its transaction). Applies to the primary and every replica.
DATABASE_TRANSACTION_POOLING = env_bool("DATABASE_TRANSACTION_POOLING", False)
if DATABASE_TRANSACTION_POOLING:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        raise ImproperlyConfigured("DATABASE_TRANSACTION_POOLING needs a PostgreSQL DATABASE_URL.")
    for _database in DATABASES.values():
        _database.setdefault("OPTIONS", {})["prepare_threshold"] = None
        _database["DISABLE_SERVER_SIDE_CURSORS"] = True

# Seconds a client is told to wait (`Retry-After`) when the database is unavailable (503).
DATABASE_RETRY_AFTER_SECONDS = env_int("DATABASE_RETRY_AFTER_SECONDS", 5, minimum=1)
# --- Cache ---------------------------------------------------------------------------------------

# The ingest rate-limit counters live in the default cache. With REDIS_URL (e.g.
# redis://127.0.0.1:6379/0) every gunicorn worker and web instance shares them, so a limit holds
# for the whole service; without it each worker counts in its own memory.
REDIS_URL = env_str("REDIS_URL") or None
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"REDIS_URL={REDIS_URL!r} is not a Redis URL (redis://host:port/db, rediss://…, "
            "unix://path)."
        )
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "energy",
            # Fail fast: a request never waits long on an unreachable Redis (see throttles.py).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "energy",
        }
    }

# --- Django REST framework -----------------------------------------------------------------------

REST_FRAMEWORK = {
    # Token first, so a request with no credentials gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "telemetry.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.StrictContentNegotiation",
    "STRICT_JSON": True,
    "COERCE_DECIMAL_TO_STRING": False,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # DRF's, plus 503 + Retry-After when the database is unavailable.
    "EXCEPTION_HANDLER": "telemetry.database_faults.api_exception_handler",
}

# Seconds a worker remembers an accepted device key or DRF token; a revoked key or deleted token
# stops working within this delay (0: look it up on every request).
API_AUTH_CACHE_SECONDS = env_int("API_AUTH_CACHE_SECONDS", 5, minimum=0)

# --- API docs ------------------------------------------------------------------------------------

SPECTACULAR_SETTINGS = {
    "TITLE": "Energy telemetry engine",
    "DESCRIPTION": (
        "Ingests smart-meter (AC) and vehicle (DC) readings, keeps live status and an append-only "
        "history, maps vehicles to meters over time and reports charging efficiency (DC / AC).\n\n"
        "Devices authenticate with `Authorization: Api-Key <key>`; people with a session "
        "(log in at /admin/) or a token: `Authorization: Bearer <token>` (paste the bare token "
        "into Authorize) or `Authorization: Token <token>`."
        "\n\n**Lists and errors.** Every list speaks one vocabulary: `limit` is the page size "
        "(each list states its range and default), `cursor` the opaque position from a page's "
        "`next` or `previous` link on the cursor-paginated lists, and `page` (from 1) only on "
        "the ranked fleet list `/v1/analytics/fleet/inefficient`. A query parameter that does "
        "not parse or is out of range (`limit=0`, `limit=abc`, a cursor this API did not issue, "
        "`stale=maybe`, a timestamp without an offset) is a 400 whose JSON body names it, "
        '`{"limit": ["Must be between 1 and 1000; got 0."]}`; nothing is silently replaced by a '
        'default. An id in a path that cannot exist is a 404 `{"detail": "..."}`. When '
        "the database is unavailable every route answers 503 with a `Retry-After` header."
    ),
    "VERSION": "1.0.0",
    # 3.1 speaks JSON Schema 2020-12, the dialect msgspec writes the reading schemas in.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One enum component for the alarm types of alarms and of webhook endpoints.
    "ENUM_NAME_OVERRIDES": {"AlarmTypeEnum": "alarms.models.AlarmType"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "telemetry.openapi.add_reading_components",
        "telemetry.openapi.add_retry_after_headers",
        "api.openapi.add_common_responses",
    ],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "Device key, sent as `Api-Key <key>`.",
            }
        }
    },
}

# --- Telemetry -----------------------------------------------------------------------------------

# A reading from an unknown device registers it; off, such a reading is rejected.
TELEMETRY_AUTO_REGISTER = env_bool("TELEMETRY_AUTO_REGISTER", True)
# Most readings one request may carry.
TELEMETRY_MAX_BATCH = env_int("TELEMETRY_MAX_BATCH", 5000, minimum=1)
# Largest request body, in bytes (413 above it).
TELEMETRY_MAX_BODY_BYTES = env_int("TELEMETRY_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = TELEMETRY_MAX_BODY_BYTES
# How far in the future a reading's timestamp may be (clock skew), in seconds.
TELEMETRY_MAX_FUTURE_SECONDS = env_int("TELEMETRY_MAX_FUTURE_SECONDS", 300, minimum=0)
# A device with no reading for this many seconds is reported stale.
TELEMETRY_STALE_AFTER_SECONDS = env_int("TELEMETRY_STALE_AFTER_SECONDS", 300, minimum=1)
# History partitions (PostgreSQL) older than this many days are dropped by `manage_partitions`.
TELEMETRY_RETENTION_DAYS = env_int("TELEMETRY_RETENTION_DAYS", 400, minimum=1)
# Daily partitions `manage_partitions` creates ahead of today.
TELEMETRY_PARTITIONS_AHEAD_DAYS = env_int("TELEMETRY_PARTITIONS_AHEAD_DAYS", 7, minimum=0)
# Readings older than this many days are rejected (default: the retention period); the ingest path
# never creates a partition before it. `import_telemetry --allow-older` lifts it for backfills.
TELEMETRY_MAX_AGE_DAYS = env_int("TELEMETRY_MAX_AGE_DAYS", TELEMETRY_RETENTION_DAYS, minimum=1)
# Most energy one reading may carry (kwhConsumedAc, kwhDeliveredDc), in kWh: a plausibility bound
# that also keeps every rollup and analytics sum finite.
TELEMETRY_MAX_KWH_PER_READING = env_float(
    "TELEMETRY_MAX_KWH_PER_READING", 100.0, minimum=0.001, maximum=1e9
)

# --- MQTT ingestion (manage.py ingest_mqtt) -------------------------------------------------------

# The broker the consumer reads from: mqtt://[user:password@]host[:port] (mqtts:// for TLS).
MQTT_URL = env_str("MQTT_URL", "mqtt://127.0.0.1:1883")
try:
    _mqtt_url = urlsplit(MQTT_URL)
    _mqtt_url.port  # noqa: B018 - raises ValueError on a bad port
except ValueError:
    _mqtt_url = None
if _mqtt_url is None or _mqtt_url.scheme not in ("mqtt", "mqtts") or not _mqtt_url.hostname:
    raise ImproperlyConfigured(
        f"MQTT_URL={MQTT_URL!r} is not mqtt://[user:password@]host[:port] (or mqtts://)."
    )
# The consumer's client id: stable, so its persistent session (and queued messages) survive a
# restart; give each consumer instance its own.
MQTT_CLIENT_ID = env_str("MQTT_CLIENT_ID", "energy-ingest-1")
# Consumers of one group share the subscription ($share/<group>/...); empty (the default): a plain
# subscription, the only kind Mosquitto 2.0 keeps across its own restart (see the README).
MQTT_SHARE_GROUP = env_str("MQTT_SHARE_GROUP", "")
# How long the broker keeps the consumer's session (and queues for it) while it is away.
MQTT_SESSION_EXPIRY_SECONDS = env_int("MQTT_SESSION_EXPIRY_SECONDS", 86400, minimum=0)
# Port of the consumer's Prometheus endpoint (0: none).
MQTT_METRICS_PORT = env_int("MQTT_METRICS_PORT", 0, minimum=0)
# Ingest requests one device key may make, as (requests, seconds), e.g. "1200/min"; None: no
# limit. Counted in the default cache (Redis when REDIS_URL is set), see telemetry/throttles.py.
TELEMETRY_RATE_LIMIT = env_rate("TELEMETRY_RATE_LIMIT")

# --- Analytics -----------------------------------------------------------------------------------

# Efficiency (percent) below which a vehicle is FAULT_DETECTED.
ANALYTICS_FAULT_THRESHOLD_PCT = env_float(
    "ANALYTICS_FAULT_THRESHOLD_PCT", 85.0, minimum=1.0, maximum=100.0
)
# AC (kWh) below which a vehicle's window is IDLE: nothing was charged, nothing to judge.
ANALYTICS_MIN_CHARGE_KWH = env_float("ANALYTICS_MIN_CHARGE_KWH", 1.0, minimum=0.001, maximum=1000.0)
# Longest window an analytics query may cover, in days.
ANALYTICS_MAX_WINDOW_DAYS = env_int("ANALYTICS_MAX_WINDOW_DAYS", 31, minimum=1)

# --- Alarms and notifications --------------------------------------------------------------------

# Window over which `evaluate_alarms` judges each vehicle's efficiency, in hours.
ALARM_WINDOW_HOURS = env_int("ALARM_WINDOW_HOURS", 24, minimum=1)
# A LOW_EFFICIENCY alarm clears only once efficiency is this many points above the threshold.
ALARM_CLEAR_MARGIN_PCT = env_float("ALARM_CLEAR_MARGIN_PCT", 2.0, minimum=0.0, maximum=50.0)
# A mapped device silent for longer than this many minutes raises DEVICE_OFFLINE.
ALARM_OFFLINE_AFTER_MINUTES = env_int("ALARM_OFFLINE_AFTER_MINUTES", 15, minimum=1)
# Attempts of one webhook delivery before it is marked failed.
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 8, minimum=1)
# Seconds one webhook POST may take (connect + response) before it counts as failed.
NOTIFY_TIMEOUT_SECONDS = env_float("NOTIFY_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=300.0)
# First retry delay in seconds; each further retry waits twice as long (at most an hour).
NOTIFY_BACKOFF_SECONDS = env_int("NOTIFY_BACKOFF_SECONDS", 30, minimum=1)

# --- Production hardening ------------------------------------------------------------------------

BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", BEHIND_TLS_PROXY)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind the TLS proxy, plain http is redirected to https, except the probes: a load balancer
# checks /healthz and /readyz over http.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# HSTS (sent on https responses only): a year behind the proxy. Subdomains and preload are a
# commitment for the whole domain, so they are the operator's explicit choice.
SECURE_HSTS_SECONDS = env_int(
    "SECURE_HSTS_SECONDS", 365 * 24 * 3600 if BEHIND_TLS_PROXY else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Content-Security-Policy of every page (django-csp): only this origin's scripts, styles, images
# and API; an inline <script> or <style> runs only with the request's nonce
# (`{{ request.csp_nonce }}`, the templates of the home page and the docs carry it).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        # Swagger UI and Redoc draw their icons as data: URIs.
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one username
# from one address, that pair is locked out for AXES_COOLOFF_MINUTES (each further failure
# restarts the wait). Counted in the database, so every worker and instance agrees.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "telemetry/lockout.html"
