"""The project stands alone: no tracked file leans on a folder beside the checkout.

A user's clone has nothing next to it, so a path that climbs out of the repository (or names
the machine's own folders) works only where we developed it. `.ci/run` also runs the whole suite
from a bare clone in an empty temporary folder, which proves the same thing end to end.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A parent-relative path into a sibling folder, or an absolute path of the development machine.
OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.])shared/(?:data|DESIGN|PITFALLS|STYLE)|/work/")
SKIP_SUFFIXES = {".gz", ".png", ".jpg", ".ico", ".woff", ".woff2"}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True)
    names = [n for n in out.stdout.decode().split("\0") if n]
    return [ROOT / n for n in names if Path(n).suffix not in SKIP_SUFFIXES
            and not n.endswith("package-lock.json")]


def test_no_tracked_file_names_a_path_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert offenders == [], "files refer outside the repository:\n" + "\n".join(offenders)


def test_the_editing_traces_ship_with_their_licence() -> None:
    traces = ROOT / "tests" / "data" / "editing-traces"
    for name in ("automerge-paper", "seph-blog1", "friendsforever_flat"):
        assert (traces / f"{name}.json.gz").stat().st_size > 10_000
    licence = (traces / "LICENSE.md").read_text()
    assert "CC BY 4.0" in licence and "josephg/editing-traces" in licence
