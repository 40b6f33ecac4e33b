"""Chart.js from the django-chartjs package (PyPI) as the static file dashboard/vendor/Chart.min.js.

The package ships Chart.js 2.9.3 (MIT) beside Highcharts (not free for commercial use) and
excanvas; listing `chartjs` in INSTALLED_APPS would publish all of them. This finder publishes the
one file the dashboard loads, so `collectstatic` copies it and WhiteNoise serves it from this host:
no CDN, works offline.
"""

from pathlib import Path

import chartjs
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

CHART_JS = "dashboard/vendor/Chart.min.js"
_SOURCE = Path(chartjs.__file__).parent / "static" / "js"


class ChartJsFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(_SOURCE))
        self.storage.prefix = "dashboard/vendor"

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path != CHART_JS:
            return [] if find_all else None
        found = str(_SOURCE / "Chart.min.js")
        return [found] if find_all else found

    def list(self, ignore_patterns):
        yield "Chart.min.js", self.storage
