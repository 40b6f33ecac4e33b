"""The admin's mapping upload: a CSV previewed line by line, then applied, by one service.

Preview and apply are both `mappings_import()` (the service `manage.py import_mappings` uses):
`apply=False` says what each line will do, `apply=True` does it. The preview is the confirmation
for every line that takes a meter from another vehicle: it names that vehicle.
"""

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from fleet.forms import MappingFileError, MappingUploadForm, mapping_rows_parse
from fleet.models import MeterAssignment
from fleet.rules import MappingAction, MappingOutcome
from fleet.services import MappingImportResult, mappings_import

# Lines shown in the preview table; the counts above it cover the whole file.
PREVIEW_LINES = 500
# Vehicles that lost a meter named one by one in the success message.
NAMED_LOSSES = 20


def mappings_upload_view(request: HttpRequest) -> HttpResponse:
    """GET: the upload form. POST a file: the preview. POST `apply` with the text: apply it."""
    opts = MeterAssignment._meta
    if not request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}"):
        return HttpResponse("Adding assignments is not allowed for this user.", status=403)
    context = {
        **admin.site.each_context(request),
        "opts": opts,
        "title": "Upload mappings CSV",
        "form": MappingUploadForm(),
    }
    if request.method == "POST" and "apply" in request.POST:
        return _apply(request, request.POST.get("csv_text", ""), context)
    if request.method == "POST":
        form = MappingUploadForm(request.POST, request.FILES)
        context["form"] = form
        if form.is_valid():
            text = form.cleaned_data["file"]
            try:
                rows, bad_lines = mapping_rows_parse(text)
            except MappingFileError as error:
                form.add_error("file", str(error))
            else:
                preview = mappings_import(rows=rows, atomic=False, apply=False)
                context.update(_preview_context(preview, bad_lines), csv_text=text)
    return TemplateResponse(request, "admin/fleet/meterassignment/upload.html", context)


def _apply(request: HttpRequest, text: str, context: dict) -> HttpResponse:
    try:
        rows, bad_lines = mapping_rows_parse(text)
    except MappingFileError as error:
        context["form"].add_error(None, str(error))
        return TemplateResponse(request, "admin/fleet/meterassignment/upload.html", context)
    result = mappings_import(rows=rows, atomic=False, apply=True)
    refused = len(result.errors) + len(bad_lines)
    message = (
        f"Mappings applied: {result.assigned} assigned, {result.unchanged} unchanged, "
        f"{refused} refused."
    )
    losses = [o for o in result.outcomes if o.takes_from_vehicle_id is not None]
    if losses:
        named = "; ".join(
            f"vehicle {o.takes_from_vehicle_id} lost meter {o.meter_id} to vehicle "
            f"{o.vehicle_id} at {o.valid_from:%Y-%m-%d %H:%M:%S} UTC (line {o.line})"
            for o in losses[:NAMED_LOSSES]
        )
        more = f" and {len(losses) - NAMED_LOSSES} more" if len(losses) > NAMED_LOSSES else ""
        message += f" Taken from other vehicles: {named}{more}; their assignments ended then."
    messages.add_message(request, messages.WARNING if refused else messages.SUCCESS, message)
    return HttpResponseRedirect(reverse("admin:fleet_meterassignment_changelist"))


def _preview_context(preview: MappingImportResult, bad_lines: list[tuple[int, str]]) -> dict:
    outcomes = [_line(outcome) for outcome in preview.outcomes]
    outcomes += [
        {"line": line, "action": MappingAction.REFUSED.value, "detail": message}
        for line, message in bad_lines
    ]
    outcomes.sort(key=lambda row: row["line"])
    return {
        "lines": outcomes[:PREVIEW_LINES],
        "line_count": len(outcomes),
        "truncated": len(outcomes) > PREVIEW_LINES,
        "counts": {
            "assign": preview.assigned,
            "unchanged": preview.unchanged,
            "refused": len(preview.errors) + len(bad_lines),
            "taken": sum(o.takes_from_vehicle_id is not None for o in preview.outcomes),
        },
    }


def _line(outcome: MappingOutcome) -> dict:
    details = []
    if outcome.action is MappingAction.REFUSED:
        details.append(outcome.reason)
    if outcome.ends_meter_id is not None:
        details.append(f"ends the vehicle's assignment to meter {outcome.ends_meter_id}")
    if outcome.takes_from_vehicle_id is not None:
        details.append(
            f"takes meter {outcome.meter_id} from vehicle {outcome.takes_from_vehicle_id}, "
            "whose assignment ends then"
        )
    return {
        "line": outcome.line,
        "vehicle_id": outcome.vehicle_id,
        "meter_id": outcome.meter_id,
        "valid_from": outcome.valid_from,
        "action": outcome.action.value,
        "detail": "; ".join(details),
        "takes": outcome.takes_from_vehicle_id is not None,
    }
