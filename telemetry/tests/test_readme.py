"""The README works from a clone: its links resolve, its commands run as written, and every
variable its curl examples use is set before."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
ROOT = README.parent


def github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)


def test_every_link_resolves_inside_the_repository():
    text = README.read_text()
    anchors = {github_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if path and not (ROOT / path).resolve().is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif path and not (ROOT / path).exists():
            broken.append(f"{target}: no such file")
        elif not path and anchor not in anchors:
            broken.append(f"{target}: no such heading")
    assert broken == []


def test_operator_commands_are_written_to_run_from_a_clone():
    lines = [
        line
        for line in README.read_text().splitlines()
        if re.search(r"(?<![/\w])python manage\.py", line)
        # Inside the image (docker compose exec/run) the image's own python is the environment.
        and "docker compose" not in line
    ]
    assert lines == [], "use scripts/manage …: it brings the project's environment"
    assert (ROOT / "scripts" / "manage").stat().st_mode & 0o111


def unset_curl_variables(text: str) -> list[str]:
    """`$NAME`s of curl commands (continuation lines joined) not assigned in or before them."""
    assigned: set[str] = set()
    unset = []
    for block in code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.removeprefix("$ ")
            assigned |= set(re.findall(r"(?:^|;\s*|\s)([A-Za-z_]\w*)=(?!=)", command))
            if "curl" in command:
                used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", command))
                unset += [f"{name}: {line.strip()}" for name in sorted(used - assigned)]
    return unset


def test_every_variable_of_a_curl_example_is_set_before_it():
    assert unset_curl_variables(README.read_text()) == []


def test_an_unset_variable_is_found_on_a_continuation_line():
    text = '```bash\nKEY=k\ncurl -s -X POST \\\n  "$BASE/v1/ingest" -H "Api-Key $KEY"\n```\n'

    assert unset_curl_variables(text) == [
        'BASE: curl -s -X POST    "$BASE/v1/ingest" -H "Api-Key $KEY"'
    ]
