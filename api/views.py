"""Error pages of the API: an unmatched `/v1/` URL answers in JSON, as every API route does."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler404`: JSON `{"detail": ...}` under `/v1/`, Django's page elsewhere (admin, docs)."""
    if request.path.startswith("/v1/"):
        return JsonResponse({"detail": "No such route: see /api/docs/."}, status=404)
    return defaults.page_not_found(request, exception)
