"""Fixtures every browser test shares: the built client and one headless Chromium per module."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "client_web" / "dist"
CHROMIUM = os.environ.get("PALIMPSEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def client_dist() -> Path:
    """The built client; scripts/setup.sh builds it, this builds it when run alone."""
    if not (DIST / "index.html").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("client_web/dist is missing and npm is not installed to build it")
        folder = DIST.parent
        if not (folder / "node_modules").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
        subprocess.run([npm, "run", "build"], cwd=folder, check=True)
    return DIST


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    import playwright.sync_api as playwright_api  # a required test dependency

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (scripts/setup.sh --services installs it)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
