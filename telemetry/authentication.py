"""API authentication: devices by `Authorization: Api-Key <key>`, people by DRF token.

Both remember an accepted credential for API_AUTH_CACHE_SECONDS per worker: a device sends every
minute and a dashboard polls, so without it the credential lookup would be one of the two or three
round trips of every request. Only accepted credentials are remembered, so a revoked key, a deleted
token or a deactivated user stops working within that many seconds in every worker (at once in the
worker that revoked it, see `forget_cached_credentials`).
"""

import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    TokenAuthentication,
    get_authorization_header,
)
from rest_framework.permissions import BasePermission

from telemetry.models import DeviceAPIKey

KEYWORD = "Api-Key"


class DeviceKeyAuthentication(BaseAuthentication):
    """Authenticate a device by its key; `request.auth` becomes the `DeviceAPIKey`.

    The user stays anonymous: a key is not a person. One indexed query per request (by prefix);
    the hash check is SHA-512, not a slow password hasher.
    """

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() != KEYWORD.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                f"Send the key as 'Authorization: {KEYWORD} <key>'."
            )
        key = header[1].decode("latin-1")
        api_key = _cached_usable_key(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        if api_key.expiry_date is not None and api_key.expiry_date < timezone.now():
            raise exceptions.AuthenticationFailed("This API key has expired.")
        api_key.mark_used()
        return (None, api_key)

    def authenticate_header(self, request) -> str:
        return KEYWORD


T = TypeVar("T")
# credential text -> (expiry, what it authenticated); one dict per kind of credential
_remembered_keys: dict[str, tuple[float, DeviceAPIKey]] = {}
_remembered_tokens: dict[str, tuple[float, tuple]] = {}
_REMEMBERED_MAX = 50_000


def _remembered(cache: dict[str, tuple[float, T]], text: str, lookup: Callable[[], T | None]):
    """`lookup()`, remembered under `text` for API_AUTH_CACHE_SECONDS if it found something."""
    ttl = settings.API_AUTH_CACHE_SECONDS
    now = time.time()
    if ttl:
        cached = cache.get(text)
        if cached is not None and cached[0] > now:
            return cached[1]
    found = lookup()
    if ttl and found is not None:
        if len(cache) >= _REMEMBERED_MAX:
            cache.clear()
        cache[text] = (now + ttl, found)
    return found


def _cached_usable_key(key: str) -> DeviceAPIKey | None:
    return _remembered(_remembered_keys, key, lambda: _usable_key(key))


def forget_cached_credentials() -> None:
    """Drop every remembered key and token of this process (after a revocation, in tests)."""
    _remembered_keys.clear()
    _remembered_tokens.clear()


BEARER = "Bearer"


class CachedTokenAuthentication(TokenAuthentication):
    """A person's DRF token, its lookup remembered (see the module docstring).

    Sent as `Authorization: Bearer <t>` (what the OpenAPI schema declares, so Swagger UI's
    Authorize takes the bare token) or `Authorization: Token <t>` (DRF's own keyword, which
    existing clients send).
    """

    def authenticate(self, request):
        scheme = get_authorization_header(request).split()[:1]
        if scheme and scheme[0].lower() == BEARER.lower().encode():
            self.keyword = BEARER  # an instance per request: this request's keyword only
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        # A failed lookup raises AuthenticationFailed, so only accepted tokens are remembered.
        return _remembered(
            _remembered_tokens,
            key,
            lambda: super(CachedTokenAuthentication, self).authenticate_credentials(key),
        )


def _usable_key(key: str) -> DeviceAPIKey | None:
    """The unrevoked key with this text, or None.

    What `APIKeyManager.get_from_key` does, with the lookup by prefix as a raw query: compiling
    the ORM query was a fifth of the single-reading path's CPU time.
    """
    prefix, _, _ = key.partition(".")
    table = DeviceAPIKey._meta.db_table
    found = list(
        DeviceAPIKey.objects.raw(
            f"SELECT * FROM {table} WHERE prefix = %s AND NOT revoked", [prefix]
        )
    )
    if not found or not found[0].is_valid(key):
        return None
    return found[0]


_KEY_COLUMNS = ", ".join(field.column for field in DeviceAPIKey._meta.concrete_fields)


class HasDeviceKey(BasePermission):
    message = f"A device key is required: 'Authorization: {KEYWORD} <key>'."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, DeviceAPIKey)


class DeviceKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "telemetry.authentication.DeviceKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": f"Device key, sent as `{KEYWORD} <key>`.",
        }


class PeopleTokenScheme(OpenApiAuthenticationExtension):
    target_class = "telemetry.authentication.CachedTokenAuthentication"
    name = "BearerAuth"
    priority = 1  # over drf-spectacular's own scheme of TokenAuthentication subclasses

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A person's token (`python manage.py drf_create_token USER`): paste it "
            "bare into Authorize; sent as `Authorization: Bearer <token>`. "
            "`Authorization: Token <token>` is accepted too.",
        }
