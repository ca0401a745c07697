"""Settings, read from the environment (django-environ).

Every variable is listed in the README under "Configuration". The defaults are the
zero-setup development ones only where they are safe: DEBUG is off unless asked for, and
without DEBUG the process refuses to start without a SECRET_KEY.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (a long random string); "
            "only DEBUG=true falls back to a development key."
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "simple_history",
    "import_export",
    # Project apps, lowest first (see DESIGN.md for the direction of imports).
    "membership_site",
    "webhooks",
    "jobs",
    "programs",
    "integrations",
    "members",
    "tiers",
    "points",
    "rewards",
]

MIDDLEWARE = [
    "membership_site.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "membership_site.api.middleware.ApiBodySizeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "membership_site.api.middleware.ApiProblemMiddleware",
]

ROOT_URLCONF = "membership_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

WSGI_APPLICATION = "membership_site.wsgi.application"

# --- Database -------------------------------------------------------------------------
# PostgreSQL in production and tests; a SQLite file is the zero-setup default for
# `make run`. SQLite takes its write lock at BEGIN (IMMEDIATE) so that concurrent writers
# wait for each other instead of failing half-way with "database is locked".
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling counters, short-lived lookups) ---------------------------------
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
CACHES["default"].setdefault("KEY_PREFIX", env.str("CACHE_KEY_PREFIX", default="loyalty"))

# --- Auth and passwords ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (served by WhiteNoise, so the admin and API docs work without a CDN
# or a separate web server) ----------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "media"))
MEDIA_URL = "media/"

# --- Security (production defaults; `manage.py check --deploy` is clean with them) -----
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted
# for the client address (IP allowlists, logs). 0 means use REMOTE_ADDR.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)

# --- Request bodies -------------------------------------------------------------------
# JSON bodies above this size get 413; file uploads (imports) have their own limit.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
API_MAX_UPLOAD_BYTES = env.int("API_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# --- Django REST framework and the API platform ---------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "integrations.authentication.ApiKeyAuthentication",
        "integrations.authentication.IntegrationOAuth2Authentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["membership_site.api.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["membership_site.api.throttling.IntegrationRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["membership_site.api.parsers.ApiJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "membership_site.api.pagination.ApiCursorPagination",
    "DEFAULT_SCHEMA_CLASS": "membership_site.api.schema.ApiAutoSchema",
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.NamespaceVersioning",
    "ALLOWED_VERSIONS": ["v1"],
    "DEFAULT_VERSION": "v1",
    "EXCEPTION_HANDLER": "membership_site.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": NUM_PROXIES,
    "PAGE_SIZE": 50,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="1200/min")
API_PAGE_SIZE_MAX = env.int("API_PAGE_SIZE_MAX", default=200)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
# A request holding an Idempotency-Key that has not finished after this long is taken to
# have died (its transaction rolled back), and the key may be used again.
IDEMPOTENCY_STALE_SECONDS = env.int("IDEMPOTENCY_STALE_SECONDS", default=120)

SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty platform API",
    "DESCRIPTION": (
        "REST API for points-of-sale, web shops and CRMs: members, cards, points, tiers, "
        "rewards, events and bulk jobs. Errors are RFC 9457 problem details "
        "(`application/problem+json`) with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name get explicit component names.
    "ENUM_NAME_OVERRIDES": {
        "LocationKindEnum": "programs.models.Location.Kind",
        "CardKindEnum": "members.models.Card.Kind",
        "CardStatusEnum": "members.models.Card.Status",
        "MemberStatusEnum": "members.models.Member.Status",
        "IntegrationKindEnum": "integrations.models.Integration.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "membership_site.api.schema.add_problem_responses",
        "webhooks.schema.add_event_catalog",
    ],
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# django-oauth-toolkit's models are swappable; naming them lets other apps point at them.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER = {
    "SCOPES_BACKEND_CLASS": "integrations.scopes.IntegrationScopes",
    "OAUTH2_VALIDATOR_CLASS": "integrations.oauth.IntegrationOAuth2Validator",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("OAUTH2_ACCESS_TOKEN_SECONDS", default=3600),
    # Follow RFC 9700 (OAuth 2.0 Security BCP) throughout; among other things tokens are
    # stored hashed, not in clear. Only the client credentials grant is used.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "PKCE_REQUIRED": True,
}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# No broker configured: run tasks in-process, so `make run` needs no Redis or worker.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    # Eager tasks still take a producer from the pool; an in-memory transport keeps kombu
    # from warning "No hostname was supplied" on every command (it is never used).
    CELERY_BROKER_URL = "memory://localhost/"
# Prefix for every key Celery writes in Redis, so several deployments (or test runs) can
# share one Redis server.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"global_keyprefix": env.str("CELERY_REDIS_KEY_PREFIX")}
    if env.str("CELERY_REDIS_KEY_PREFIX", default="")
    else {}
)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TIMEZONE = "UTC"
# Periodic tasks are declared by each app in ``<app>/beat.py`` (``SCHEDULE``) and
# collected by membership_site.celery.
CELERY_BEAT_SCHEDULE: dict = {}

# --- Logging: one line per event; API requests are logged by the request middleware ----
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "membership_site.api.middleware.RequestIdLogFilter"}},
    "formatters": {
        "line": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The request middleware writes its own access line; Django's would repeat it.
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        # In-process (eager) tasks would log a line per task run into every command's
        # output; workers keep their own task log.
        "celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else LOG_LEVEL},
    },
}

# --- Domain settings ------------------------------------------------------------------
# Country used to read phone numbers written without an international prefix, when the
# program does not set its own.
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="US")

# --- Events and webhooks (webhooks app) ---------------------------------------------------
# Allow webhook URLs that resolve to private, loopback or link-local addresses (off in
# production: it would let API users probe the internal network).
WEBHOOKS_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKS_ALLOW_PRIVATE_URLS", default=False)
EVENTS_RETENTION_DAYS = env.int("EVENTS_RETENTION_DAYS", default=30)
WEBHOOK_SECRET_OVERLAP_HOURS = env.int("WEBHOOK_SECRET_OVERLAP_HOURS", default=24)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Webhook URLs must be https, except in development.
WEBHOOKS_REQUIRE_HTTPS = env.bool("WEBHOOKS_REQUIRE_HTTPS", default=not DEBUG)
# An endpoint whose every attempt failed for this long is disabled.
WEBHOOK_DISABLE_AFTER_FAILING_DAYS = env.int("WEBHOOK_DISABLE_AFTER_FAILING_DAYS", default=5)
# The sweeper redoes a dispatch or a delivery that is this much overdue (a lost task).
WEBHOOK_SWEEP_GRACE_SECONDS = env.int("WEBHOOK_SWEEP_GRACE_SECONDS", default=120)
WEBHOOK_MAX_ENDPOINTS_PER_PROGRAM = env.int("WEBHOOK_MAX_ENDPOINTS_PER_PROGRAM", default=20)
# Fernet keys (comma-separated) encrypting webhook secrets at rest: the first encrypts,
# all decrypt (to rotate, put a new key first). Empty: one key derived from SECRET_KEY,
# so changing SECRET_KEY then makes the stored webhook secrets unreadable.
FIELD_ENCRYPTION_KEY = env.list("FIELD_ENCRYPTION_KEY", default=[])

# --- Points (points app) ------------------------------------------------------------------
POINTS_HOLD_DEFAULT_MINUTES = env.int("POINTS_HOLD_DEFAULT_MINUTES", default=15)
# Most purchases the admin's "preview this rule on the last 30 days" reads.
EARNING_PREVIEW_MAX_PURCHASES = env.int("EARNING_PREVIEW_MAX_PURCHASES", default=20000)
# Days before expiry at which a points.expiring event is sent, e.g. "30,7".
POINTS_EXPIRY_WARNING_DAYS = env.list("POINTS_EXPIRY_WARNING_DAYS", cast=int, default=[30, 7])

# --- Jobs (jobs app) ----------------------------------------------------------------------
JOBS_CHUNK_SIZE = env.int("JOBS_CHUNK_SIZE", default=1000)
# How long export files and reports stay downloadable.
JOBS_FILE_RETENTION_HOURS = env.int("JOBS_FILE_RETENTION_HOURS", default=72)
JOBS_STORAGE_DIR = env.path("JOBS_STORAGE_DIR", default=str(Path(MEDIA_ROOT) / "jobs"))
# A running job whose worker shows no sign of life (one per chunk) for this long is
# re-queued by the sweeper (jobs.requeue_stale / manage.py jobs_requeue_stale).
JOBS_STALE_SECONDS = env.int("JOBS_STALE_SECONDS", default=600)
# Rows the admin's import preview validates in the request; the job checks them all.
JOBS_ADMIN_PREVIEW_ROWS = env.int("JOBS_ADMIN_PREVIEW_ROWS", default=200)

# --- Tiers (tiers app) --------------------------------------------------------------------
# Each program is evaluated once a day when its local time reaches this hour (0-23); the
# beat task checks hourly.
TIERS_EVALUATION_LOCAL_HOUR = env.int("TIERS_EVALUATION_LOCAL_HOUR", default=1)
# Members whose metrics are summed by one query and whose changes commit together.
TIERS_EVALUATION_BATCH_SIZE = env.int("TIERS_EVALUATION_BATCH_SIZE", default=20000)
# The tier activity index lists covering columns (INCLUDE) for PostgreSQL; SQLite, the demo
# database, ignores them, which is fine.
SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "models.W040"]

# --- Rewards (rewards app) ----------------------------------------------------------------
# Hour (UTC) at which the daily voucher expiry job runs; it also runs on demand with
# `manage.py rewards_expire_vouchers`.
REWARDS_EXPIRE_VOUCHERS_HOUR = env.int("REWARDS_EXPIRE_VOUCHERS_HOUR", default=2)
# The catalog's `kind` gets its own component name in the OpenAPI schema.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["RewardKindEnum"] = "rewards.models.Reward.Kind"
