"""Content negotiation with the API's strictness: `?format=` names a renderer of the route.

DRF answers an unknown `?format=` with a 404 and ignores an empty one; here both are a 400 naming
the parameter, like every other query value that does not parse.
"""

from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation

from api.params import shown


class StrictContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        name = self.settings.URL_FORMAT_OVERRIDE
        if name and name in request.query_params:
            value = request.query_params[name]
            formats = [renderer.format for renderer in renderers]
            if value not in formats:
                raise ValidationError(
                    {
                        name: [
                            f"{shown(value)!r} is not a format of this route: {', '.join(formats)}."
                        ]
                    }
                )
        return super().select_renderer(request, renderers, format_suffix)
