"""The admin's forms for assignments: previews of `meter_assign`'s rule, applied by the service.

Every form asks `assignment_preview()` (the service's own rule) what a save would do: a refusal is
a form error, and taking a meter from another vehicle needs the "confirm the move" box ticked. The
save runs `meter_assign()` inside the admin's own transaction, so a device added on the same page
and its first assignment commit together or not at all.
"""

import csv
import io
import re
from datetime import datetime

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminSplitDateTime, AutocompleteSelect
from django.core.exceptions import ValidationError
from django.utils import timezone

from fleet.models import DEVICE_ID_PATTERN, DEVICE_ID_RULE, Meter, MeterAssignment, Vehicle
from fleet.rules import MappingAction, MappingOutcome
from fleet.selectors import assignment_preview
from fleet.services import MappingRow, meter_assign

MAPPING_HEADER = ("vehicleId", "meterId", "validFrom")
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


def _autocomplete(field_name: str) -> AutocompleteSelect:
    """An autocomplete widget for the assignment's `vehicle` or `meter` (never a full dropdown)."""
    return AutocompleteSelect(MeterAssignment._meta.get_field(field_name), admin.site)


def _valid_from_field() -> forms.SplitDateTimeField:
    return forms.SplitDateTimeField(
        label="valid from",
        required=False,
        initial=timezone.now,
        widget=AdminSplitDateTime,
        help_text="When the new assignment starts (UTC); blank means now.",
    )


def _confirm_field() -> forms.BooleanField:
    return forms.BooleanField(
        label="confirm the move",
        required=False,
        help_text="Needed when the meter serves another vehicle now: that vehicle loses it.",
    )


def outcome_message(outcome: MappingOutcome) -> str:
    """What an applied assignment did, for the admin's success message."""
    at = f"{outcome.valid_from:%Y-%m-%d %H:%M:%S} UTC"
    message = f"Meter {outcome.meter_id} serves vehicle {outcome.vehicle_id} from {at}."
    if outcome.ends_meter_id is not None:
        message += f" Its previous meter {outcome.ends_meter_id} stopped serving it then."
    if outcome.takes_from_vehicle_id is not None:
        message += (
            f" Vehicle {outcome.takes_from_vehicle_id} lost meter {outcome.meter_id}: "
            f"its assignment ended at {at}."
        )
    return message


class AssignmentPreviewMixin:
    """`clean()` previews the assignment; `assign()` applies it with `meter_assign()`."""

    outcome: MappingOutcome | None = None

    def preview(self, *, vehicle: Vehicle, meter: Meter, valid_from: datetime) -> None:
        self.outcome = assignment_preview(vehicle=vehicle, meter=meter, valid_from=valid_from)
        if self.outcome.action is MappingAction.REFUSED:
            self.add_error("valid_from", self.outcome.reason)
        elif self.outcome.takes_from_vehicle_id and not self.cleaned_data.get("confirm_move"):
            self.add_error(
                "confirm_move",
                f"Meter {meter.meter_id} serves vehicle {self.outcome.takes_from_vehicle_id} "
                f"now: that vehicle loses it at {valid_from:%Y-%m-%d %H:%M:%S} UTC. Tick "
                "“confirm the move” and save again to move it.",
            )

    def assign(self, *, vehicle: Vehicle, meter: Meter) -> tuple[MeterAssignment, str]:
        """Apply through the service; the assignment and what happened, for the message."""
        assignment = meter_assign(
            vehicle=vehicle, meter=meter, valid_from=self.cleaned_data["valid_from"]
        )
        if self.outcome is None or self.outcome.action is not MappingAction.ASSIGN:
            return assignment, ""
        return assignment, outcome_message(self.outcome)


class DeviceAssignForm(AssignmentPreviewMixin, forms.ModelForm):
    """A device's own fields, plus the device to assign to it from `valid_from`."""

    counterpart = ""  # "meter" on the vehicle's form, "vehicle" on the meter's form

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            current = self.instance.assignments.open().first()
            if current is not None:
                self.fields[self.counterpart].initial = getattr(current, f"{self.counterpart}_id")

    def pair(self, counterpart: Vehicle | Meter) -> tuple[Vehicle, Meter]:
        """(vehicle, meter) of the assignment: this form's device and the one picked."""
        if self.counterpart == "meter":
            return self.instance, counterpart
        return counterpart, self.instance

    def wants_assignment(self) -> bool:
        return (
            self.cleaned_data.get(self.counterpart) is not None
            and self.counterpart in self.changed_data
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors or not self.wants_assignment():
            return cleaned
        cleaned["valid_from"] = cleaned.get("valid_from") or timezone.now()
        vehicle, meter = self.pair(cleaned[self.counterpart])
        self.preview(vehicle=vehicle, meter=meter, valid_from=cleaned["valid_from"])
        return cleaned

    def assign_picked(self) -> str:
        """Apply the requested assignment (after the device is saved); the message, or ""."""
        if not self.wants_assignment():
            return ""
        vehicle, meter = self.pair(self.cleaned_data[self.counterpart])
        return self.assign(vehicle=vehicle, meter=meter)[1]


def _device_assign_form(model, counterpart: str, details: str) -> type[DeviceAssignForm]:
    """The change form of a vehicle or meter: its fields, and the counterpart to assign."""
    counterpart_model = MeterAssignment._meta.get_field(counterpart).related_model
    picked = forms.ModelChoiceField(
        queryset=counterpart_model.objects.all(),
        required=False,
        widget=_autocomplete(counterpart),
        label=counterpart,
        help_text="Assign or reassign: the current assignment ends when the new one starts.",
    )
    meta = type(
        "Meta",
        (),
        {"model": model, "fields": (model.external_id_field, "display_name", "depot", details)},
    )
    return type(
        f"{model.__name__}AdminForm",
        (DeviceAssignForm,),
        {
            "__module__": __name__,
            "counterpart": counterpart,
            counterpart: picked,
            "valid_from": _valid_from_field(),
            "confirm_move": _confirm_field(),
            "Meta": meta,
        },
    )


VehicleAdminForm = _device_assign_form(Vehicle, "meter", "battery_capacity_kwh")
MeterAdminForm = _device_assign_form(Meter, "vehicle", "rated_power_kw")


class MeterAssignmentAddForm(AssignmentPreviewMixin, forms.ModelForm):
    """A new assignment, applied by `meter_assign()` (which closes what it replaces).

    The fields are left out of the model instance's validation (`Meta.exclude`): the row is not
    saved from this form, and the model's `clean()` would refuse the overlap with the current
    assignment that the service is about to close. `clean()` previews the service's rule instead.
    """

    vehicle = forms.ModelChoiceField(
        queryset=Vehicle.objects.all(), widget=_autocomplete("vehicle")
    )
    meter = forms.ModelChoiceField(queryset=Meter.objects.all(), widget=_autocomplete("meter"))
    valid_from = _valid_from_field()
    confirm_move = _confirm_field()

    class Meta:
        model = MeterAssignment
        fields = ()
        # Excluded from the instance's validation, not from the form (the fields are declared).
        exclude = ("vehicle", "meter", "valid_from", "valid_to")  # noqa: DJ006

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        cleaned["valid_from"] = cleaned.get("valid_from") or timezone.now()
        self.preview(
            vehicle=cleaned["vehicle"], meter=cleaned["meter"], valid_from=cleaned["valid_from"]
        )
        return cleaned


class MappingUploadForm(forms.Form):
    """A CSV of vehicleId,meterId,validFrom (the `import_mappings` format)."""

    file = forms.FileField(
        label="mappings CSV",
        help_text="Header vehicleId,meterId,validFrom; validFrom ISO 8601 with an offset, or "
        "empty for now.",
    )

    MAX_BYTES = 20 * 1024 * 1024

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError("The file is larger than 20 MB: use `manage.py import_mappings`.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text.") from None


class MappingFileError(ValueError):
    """The file as a whole is not a mappings CSV (its header)."""


def mapping_rows_parse(text: str) -> tuple[list[MappingRow], list[tuple[int, str]]]:
    """The good rows of a mappings CSV, and (line, message) for each bad one."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(reader, [])]
    if tuple(header[:3]) != MAPPING_HEADER:
        raise MappingFileError(
            f"The first line must be the header {','.join(MAPPING_HEADER)}, "
            f"found {','.join(header) or 'nothing'}."
        )
    rows: list[MappingRow] = []
    errors: list[tuple[int, str]] = []
    for cells in reader:
        line = reader.line_num
        if not cells or not any(cell.strip() for cell in cells):
            continue
        try:
            rows.append(mapping_row_parse(cells, line))
        except ValueError as error:
            errors.append((line, str(error)))
    return rows, errors


def mapping_row_parse(cells: list[str], line: int) -> MappingRow:
    if len(cells) < 2 or len(cells) > 3:
        raise ValueError(f"Expected 3 columns (vehicleId,meterId,validFrom), found {len(cells)}.")
    vehicle_id, meter_id = cells[0].strip(), cells[1].strip()
    valid_from_text = cells[2].strip() if len(cells) == 3 else ""
    for field, value in (("vehicleId", vehicle_id), ("meterId", meter_id)):
        # The validator's own pattern, matched directly: RegexValidator's call was a third of the
        # parsing time of a 100,000-line file.
        if not _DEVICE_ID.search(value):
            raise ValueError(f"{field} {value!r} is not a device id ({DEVICE_ID_RULE}).")
    valid_from = None
    if valid_from_text:
        try:
            valid_from = datetime.fromisoformat(valid_from_text)
        except ValueError:
            raise ValueError(
                f"validFrom {valid_from_text!r} is not an ISO 8601 date-time."
            ) from None
        if timezone.is_naive(valid_from):
            raise ValueError(
                f"validFrom {valid_from_text!r} must carry a UTC offset (e.g. "
                "2026-02-10T10:00:00Z)."
            )
    return MappingRow(vehicle_id, meter_id, valid_from, line=line)
