"""Strict django-filter pieces: a filter value that does not parse is a 400, never ignored."""

from django import forms
from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters

EMPTY_VALUE = "Give a value, or leave the parameter out."


class StrictBooleanField(forms.NullBooleanField):
    """`true`/`false` (or `1`/`0`); anything else is a 400, never silently ignored."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValidationError("Must be true or false.", code="invalid")

    def validate(self, value) -> None:
        return None


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class StrictFilterSet(filters.FilterSet):
    """A filter given with an empty value (`?stale=`) is a 400 naming it, not "no filter"."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.filters:
            if name not in self.data:
                continue
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data[name]]
            if not "".join(str(value) for value in values).strip():
                self.form.add_error(name, EMPTY_VALUE)
                valid = False
        return valid
