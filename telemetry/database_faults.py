"""The database is unavailable: answer 503 with `Retry-After` and a JSON body, log one line.

Raised when the database's backends are terminated, the server is stopped, restarting or not
accepting connections: psycopg 3 raises `OperationalError` subclasses (`AdminShutdown`,
`CannotConnectNow`, "connection failed", "the connection is closed"), which Django re-raises as
`django.db.OperationalError`; `InterfaceError` covers a connection Django finds closed. They reach
us from the view, from a selector, or from the credential lookup of the authentication classes.
The other `OperationalError`s are transient too (a deadlock, a cancelled statement, SQLite's
"database is locked"): the same answer, retry later.

Two entry points share one answer:

- `api_exception_handler` (DRF's `EXCEPTION_HANDLER`) for every API route. The ingest view then
  puts the detail into its own response shape (`IngestView.handle_exception`).
- `DatabaseUnavailableMiddleware.process_exception` for the pages outside DRF (admin, home).

Recovery needs nothing of ours: Django marks a connection on which such an error occurred
(`errors_occurred`) and, when the request finishes, `close_if_unusable_or_obsolete` probes it and
closes it if it is broken, so the worker's next request connects afresh, even with
`CONN_MAX_AGE=600` and `CONN_HEALTH_CHECKS` off (tested against a cluster that is broken on
purpose, `telemetry/tests/test_database_faults.py`).
"""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger("telemetry.database")

DATABASE_FAULTS = (OperationalError, InterfaceError)


def unavailable_detail() -> str:
    return f"The database is unavailable; retry in {settings.DATABASE_RETRY_AFTER_SECONDS} s."


def api_exception_handler(exc, context):
    """DRF's handler, plus 503 + `Retry-After` when the database is unavailable."""
    if isinstance(exc, DATABASE_FAULTS):
        response = Response({"detail": unavailable_detail()}, status=503)
        return _unavailable(context["request"], exc, response)
    return exception_handler(exc, context)


class DatabaseUnavailableMiddleware:
    """The same 503 for the pages that are not DRF views (admin, home)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_FAULTS):
            return None
        response = JsonResponse({"detail": unavailable_detail()}, status=503)
        return _unavailable(request, exception, response)


def _unavailable(request: HttpRequest, error: Exception, response):
    """Add `Retry-After`, log the one line, and keep Django from logging a second one."""
    response["Retry-After"] = str(settings.DATABASE_RETRY_AFTER_SECONDS)
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None else request.path
    cause = error.__cause__
    error_class = type(error).__name__ + (f"/{type(cause).__name__}" if cause else "")
    # One line whatever the message holds (libpq's span lines); a path cannot add one either.
    reason = " ".join(str(error).split())[:200]
    logger.warning(
        "database unavailable: %s %s answered 503 error=%s retry_after=%ds reason=%s",
        request.method,
        route.encode("unicode_escape").decode("ascii"),
        error_class,
        settings.DATABASE_RETRY_AFTER_SECONDS,
        reason.encode("unicode_escape").decode("ascii"),
    )
    response._has_been_logged = True
    return response
