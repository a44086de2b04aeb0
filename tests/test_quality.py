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


def test_compiled_modules_leave_their_safety_checks_to_the_build() -> None:
    """`LAYERGATE_DEBUG=1` turns on bounds, wraparound and initialization checks in setup.py;
    a `# cython:` header line setting them would win over the build's options."""
    sources = sorted(REPO.glob("engine/*.pyx")) + sorted(REPO.glob("dsl/*.pyx"))
    assert len(sources) == 4
    for source in sources:
        header = [line for line in source.read_text().splitlines() if line.startswith("# cython:")]
        assert header, source
        for check in ("boundscheck", "wraparound", "initializedcheck"):
            assert not any(check in line for line in header), (source.name, check)
