"""Lint runs as a test, so a clean clone fails CI on style errors too."""

from __future__ import annotations

import shutil
import subprocess
import sys

from .conftest import REPO


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or f"{sys.prefix}/bin/ruff"
    result = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
