"""Device authentication: `Authorization: Api-Key <key>`."""

import time

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
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


# key text -> (expiry, key): a device sends every minute, so without this the key lookup
# would be one of the two round trips of every single-reading request.
_recent_keys: dict[str, tuple[float, DeviceAPIKey]] = {}
_RECENT_KEYS_MAX = 50_000


def _cached_usable_key(key: str) -> DeviceAPIKey | None:
    """`_usable_key`, remembered for TELEMETRY_API_KEY_CACHE_SECONDS (0: always ask the database).

    Only accepted keys are remembered, so a revoked or expired key stops working within that many
    seconds in every worker (at once in the worker that revoked it, see `forget_cached_key`).
    """
    ttl = settings.TELEMETRY_API_KEY_CACHE_SECONDS
    now = time.time()
    if ttl:
        cached = _recent_keys.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
    api_key = _usable_key(key)
    if ttl and api_key is not None:
        if len(_recent_keys) >= _RECENT_KEYS_MAX:
            _recent_keys.clear()
        _recent_keys[key] = (now + ttl, api_key)
    return api_key


def forget_cached_keys() -> None:
    """Drop every remembered key of this process (after a revocation, in tests)."""
    _recent_keys.clear()


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
