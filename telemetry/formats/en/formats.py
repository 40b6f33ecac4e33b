"""One format for every time the site renders (admin lists and pages): `2026-11-23 10:15:00 UTC`.

Values are stored in UTC and shown in TIME_ZONE; `T` is that zone's abbreviation. Only the
date-and-time formats are set: dates, months and input formats stay Django's English ones.
"""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
