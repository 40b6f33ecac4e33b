"""Pages a person opens, under the project's Content-Security-Policy: the API docs, the site icon.

Swagger UI and Redoc use templates of ours (`telemetry/templates/telemetry/`): drf-spectacular's
inline style and script there carry the request's CSP nonce, and nothing is loaded from another
host (the assets come from drf-spectacular-sidecar, served by the project itself).
"""

from csp.decorators import csp_update
from django.http import HttpResponse
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

# What the Redoc bundle (drf-spectacular-sidecar's redoc 2.5) needs beyond the site's policy, and
# nothing more; the browser tests fail, naming the directive, if a new bundle needs something else.
# - Two <style> elements it inserts while the bundle loads, before it knows the nonce (its
#   styled-components styles get the nonce from the `nonce` option): an empty one and the
#   perfect-scrollbar rules, allowed by the hash of exactly that content.
# - Its search index runs in a Web Worker that it starts from a blob: URL of its own code.
REDOC_POLICY = {
    "style-src": [
        "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
        "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
    ],
    "worker-src": ["'self'", "blob:"],
}


def swagger_ui_view():
    return SpectacularSwaggerView.as_view(
        url_name="schema", permission_classes=[], template_name="telemetry/swagger_ui.html"
    )


def redoc_view():
    return csp_update(REDOC_POLICY)(
        SpectacularRedocView.as_view(
            url_name="schema", permission_classes=[], template_name="telemetry/redoc.html"
        )
    )


_ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<path d="M9 0 2 9h5l-1 7 7-9H8z" fill="#0b5cad"/></svg>'
)


def favicon(request):
    """The site icon: every browser asks each site for /favicon.ico (a 404 is a console error)."""
    response = HttpResponse(_ICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
