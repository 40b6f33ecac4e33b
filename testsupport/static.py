"""Static files for tests that serve the project under gunicorn (WhiteNoise needs `collectstatic`).

`collect_static_once()` runs `manage.py collectstatic` into STATIC_ROOT (`staticfiles/`,
git-ignored) once per test run: pytest-xdist workers take a file lock, the first one does the work.
"""

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from testsupport.servers import ROOT

STATIC_ROOT = ROOT / "staticfiles"


def collect_static_once() -> None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}"
    marker = STATIC_ROOT / f".collected-{run}"
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"energy-collectstatic-{digest}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        for old in STATIC_ROOT.glob(".collected-*"):
            old.unlink()
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
            cwd=ROOT,
            env={**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY", "test-only-secret-key")},
            check=True,
            capture_output=True,
        )
        marker.touch()
