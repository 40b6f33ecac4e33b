"""First paint of the analyst dashboard, in Chromium, against a running server.

    python bench/dashboard.py http://127.0.0.1:8000 --user admin --password admin \
        --vehicle SIM-V-00001 [--runs 5] [--screenshots DIR]

Logs in at /dashboard/login/, then loads each page `--runs` times and prints the medians of:
the server's time to first byte, first contentful paint, and the moment the page marks its
charts drawn (`performance.mark('dashboard-charts-drawn')`, set after Chart.js has drawn every
chart from the embedded figures). Serve a fleet-day first (e.g. `simulate_fleet`, or rollups
written by SQL) so the fleet page reads a realistic number of rollup rows.
"""

import argparse
import shutil
import statistics
from pathlib import Path

from playwright.sync_api import sync_playwright

TIMINGS = """(() => {
    const n = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const drawn = performance.getEntriesByName('dashboard-charts-drawn')[0];
    return [n.responseStart - n.requestStart, fcp ? fcp.startTime : -1, drawn.startTime];
})()"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--vehicle", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screenshots", type=Path)
    args = parser.parse_args()
    pages = [
        ("fleet, 24 h", "/dashboard/?window=24h"),
        ("fleet, 7 days", "/dashboard/?window=7d"),
        ("fleet, 30 days", "/dashboard/?window=30d"),
        ("vehicle, 24 h", f"/dashboard/vehicles/{args.vehicle}/"),
        ("vehicle, 7 days", f"/dashboard/vehicles/{args.vehicle}/?window=7d"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.goto(f"{args.base}/dashboard/login/")
        page.fill("#id_username", args.user)
        page.fill("#id_password", args.password)
        page.click("input[type=submit]")
        page.wait_for_url("**/dashboard/")
        for name, path in pages:
            runs = []
            for _ in range(args.runs):
                page.goto(args.base + path)
                page.wait_for_function(
                    "performance.getEntriesByName('dashboard-charts-drawn').length > 0"
                )
                runs.append(page.evaluate(TIMINGS))
            server, paint, drawn = (round(statistics.median(r[i] for r in runs)) for i in range(3))
            print(
                f"{name:16s} server {server:5d} ms   first paint {paint:5d} ms   "
                f"charts drawn {drawn:5d} ms   (median of {args.runs}; drawn: "
                f"{[round(r[2]) for r in runs]})"
            )
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                slug = name.replace(", ", "-").replace(" ", "")
                page.screenshot(path=str(args.screenshots / f"{slug}.png"), full_page=True)
        print("console errors:", errors or "none")
        browser.close()


if __name__ == "__main__":
    main()
