"""The committed gRPC stubs are exactly what proto/ generates, and clients stand alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from layergate.clients.generate import OUTPUT, REPO, generate


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    fresh = generate(REPO / "proto", tmp_path)
    assert fresh, "protoc produced nothing"
    for path in fresh:
        committed = OUTPUT / path.name
        assert committed.exists(), f"{committed} is missing: regenerate the stubs"
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run python -m layergate.clients.generate")


def test_every_rpc_and_message_is_commented() -> None:
    text = (REPO / "proto" / "layergate" / "v1" / "authz.proto").read_text().splitlines()
    for number, line in enumerate(text):
        stripped = line.strip()
        if stripped.startswith(("rpc ", "service ", "message ", "enum ")):
            assert text[number - 1].strip().startswith("//"), f"line {number + 1}: {stripped}"


def test_the_client_package_never_imports_the_engine() -> None:
    code = ("import sys, layergate.clients; "
            "bad = [m for m in sys.modules if m.startswith('layergate.engine')]; "
            "assert not bad, bad")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
