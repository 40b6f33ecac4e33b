"""The HTTP limit of the benchmark: a WSGI app that only reads and parses the body, then 204.

Served by the same gunicorn configuration as the service, so the ratio of the service's rate to
this one's is the share of the HTTP stack's capacity the service keeps after doing its work.
"""

import msgspec

_decode = msgspec.json.Decoder().decode


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    _decode(environ["wsgi.input"].read(length) or b"null")
    start_response("204 No Content", [])
    return [b""]
