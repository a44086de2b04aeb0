"""The `layergate` command line, run as a user would run it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from layergate.engine.cli import main
from layergate.engine.cli.progress import Progress

from .conftest import EXAMPLES

CICD = EXAMPLES / "cicd-deploy"


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layergate.engine.cli", *args],
                          capture_output=True, input=stdin, timeout=60)


def test_validate_ok(capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", str(CICD / "policy.lg"), "--data", str(CICD / "data.json")]) == 0
    assert capsys.readouterr().out.startswith("ok: 4 layers (identity, roles, scope, request)")


def test_validate_reports_every_error_with_location(tmp_path: Path) -> None:
    policy = tmp_path / "bad.lg"
    policy.write_text("layer a {\n  allow * on * when foo(1)\n  allow * on * when X\n}\n")
    result = _run("validate", str(policy))
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert f"{policy}:2:21: unknown_function: unknown function `foo`" in lines[0]
    assert lines[1].strip() == "allow * on * when foo(1)"
    assert lines[2].strip() == "^"
    assert f"{policy}:3:21: unknown_name:" in lines[3]
    assert lines[-1] == "2 errors"


def test_validate_checks_data_documents(tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text('{"other": {}}')
    assert _run("validate", str(CICD / "policy.lg"), "--data", str(data)).returncode == 1


def test_eval_writes_one_decision_per_line(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    lines = [
        {"subject": {"type": "service_account", "id": "dashboard"},
         "action": {"name": "read"},
         "resource": {"type": "deployment", "id": "x",
                      "properties": {"namespace": "observability"}}},
        {"subject": {"type": "service_account"}},
    ]
    requests.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n\nnot json\n")
    result = _run("eval", str(CICD / "policy.lg"), "--data", str(CICD / "data.json"),
                  "--requests", str(requests), "--explain")
    assert result.returncode == 0, result.stderr
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 3
    # No caller was proven on the command line, so the identity layer denies (fail closed).
    assert out[0]["decision"] == "deny" and out[0]["layer"] == "identity"
    assert [layer["layer"] for layer in out[0]["layers"]] == ["identity", "roles", "scope",
                                                              "request"]
    assert out[1]["errors"][0] == {"rule": "", "code": "invalid_request", "path": "subject.id",
                                   "message": "is required"}
    assert out[2]["errors"][0]["path"] == "line 4"
    assert result.stderr == b""


def test_eval_reads_stdin_and_shows_progress_when_asked() -> None:
    request = orjson.dumps({"subject": {"type": "user", "id": "u"}, "action": {"name": "GET"},
                            "resource": {"type": "route", "id": "/todos"}})
    result = _run("eval", str(EXAMPLES / "authzen-api-gateway" / "policy.lg"), "--data",
                  str(EXAMPLES / "authzen-api-gateway" / "data.json"), "--requests", "-",
                  "--progress", stdin=request * 1 + b"\n")
    assert orjson.loads(result.stdout)["decision"] == "deny"
    assert b"eval [" in result.stderr and b"1/1" in result.stderr


def test_progress_bar_draws_only_when_enabled() -> None:
    stream = io.StringIO()
    bar = Progress(4, "eval", enabled=True, stream=stream)
    for _ in range(4):
        bar.advance()
    bar.close()
    assert stream.getvalue().rstrip().endswith("eval [" + "#" * 30 + "] 4/4")
    quiet = io.StringIO()
    Progress(4, "eval", stream=quiet).advance()
    assert quiet.getvalue() == ""


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "layergate"
    result = subprocess.run([str(script), "--help"], capture_output=True, timeout=60)
    assert result.returncode == 0
    assert b"validate" in result.stdout and b"eval" in result.stdout
