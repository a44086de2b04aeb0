"""Least-privilege entitlement report and control coverage report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from layergate.dsl import parse_policy
from layergate.engine.decision import Decision
from layergate.engine.decisionlog import DecisionLog, read
from layergate.engine.reports import controls, entitlements

POLICY = """
layers [identity, rbac]
role reader { read on [doc, wiki] }
role writer extends reader { write on doc }
role deployer { deploy on deployment }
layer identity "known accounts" controls "OWASP-NHI-01", "SP800-207" {
  allow * on * when present(data.accounts[subject.id])
}
layer rbac "bound roles" controls "NIST-CSF PR.AA-05" {
  allow * on * when grants(data.accounts[subject.id].roles)
}
"""
DATA = {"accounts": {"sa-busy": {"roles": ["writer", "deployer"]},
                     "sa-reader": {"roles": ["reader"]},
                     "sa-idle": {"roles": ["deployer"]}}}


def _log(path: Path, decisions: list[tuple[str, str, str, bool]]) -> None:
    log = DecisionLog(path)
    for n, (subject, action, resource_type, allowed) in enumerate(decisions):
        decision = Decision(allowed, "rbac", None, (), (), (), "sha256:r")
        request = {"subject": {"type": "sa", "id": subject}, "action": {"name": action},
                   "resource": {"type": resource_type, "id": f"r{n}"}}
        log.record(decision, request, None, f"d{n}", 0)
    log.close()


def test_entitlements_held_versus_used(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    _log(path, [("sa-busy", "write", "doc", True), ("sa-busy", "read", "wiki", True),
                ("sa-busy", "deploy", "deployment", False),  # denied: not a use
                ("sa-reader", "read", "doc", True)])
    report = entitlements(parse_policy(POLICY, "p.lg", DATA), DATA, read([path]))
    assert report["source"] == "data.accounts[subject.id].roles"
    by_id = {i["id"]: i for i in report["identities"]}
    busy = by_id["sa-busy"]
    assert (busy["used_roles"], busy["unused_roles"], busy["dormant"]) == (
        ["writer"], ["deployer"], False)
    used = {(p["role"], p["action"], p["resource_type"]) for p in busy["permissions"]
            if p["used"]}
    unused = {(p["role"], p["action"], p["resource_type"]) for p in busy["permissions"]
              if not p["used"]}
    assert used == {("writer", "write", "doc"), ("writer", "read", "wiki")}
    assert unused == {("writer", "read", "doc"), ("deployer", "deploy", "deployment")}
    reader = by_id["sa-reader"]
    assert (reader["used_roles"], reader["unused_roles"]) == (["reader"], [])
    assert [p["used"] for p in reader["permissions"]] == [True, False]
    idle = by_id["sa-idle"]
    assert idle["dormant"] and idle["unused_roles"] == ["deployer"]


def test_entitlement_report_command(tmp_path: Path) -> None:
    (tmp_path / "p.lg").write_text(POLICY)
    (tmp_path / "data.json").write_text(json.dumps(DATA))
    _log(tmp_path / "d.log", [("sa-reader", "read", "doc", True)])
    cli = [sys.executable, "-m", "layergate.engine.cli", "report", "entitlements", "--policy",
           str(tmp_path / "p.lg"), "--data", str(tmp_path / "data.json"), "--log",
           str(tmp_path / "d.log")]
    table = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "sa-idle" in table.stdout and "yes" in table.stdout
    as_json = subprocess.run([*cli, "--format", "json", "--since", "1h"], capture_output=True,
                             text=True, timeout=60)
    report = json.loads(as_json.stdout)
    assert {i["id"]: i["dormant"] for i in report["identities"]} == {
        "sa-busy": True, "sa-idle": True, "sa-reader": False}
    future = subprocess.run([*cli, "--format", "json", "--since", "2999-01-01T00:00:00Z"],
                            capture_output=True, text=True, timeout=60)
    assert all(i["dormant"] for i in json.loads(future.stdout)["identities"])


def test_control_coverage(tmp_path: Path) -> None:
    policy = parse_policy(POLICY, "p.lg")
    result = controls(policy, ["OWASP-NHI-01", "NIST-CSF PR.AA-05", "NIST-CSF PR.AC-4"])
    assert result["covered"] == {"NIST-CSF PR.AA-05": ["rbac"], "OWASP-NHI-01": ["identity"],
                                 "SP800-207": ["identity"]}
    assert result["missing"] == ["NIST-CSF PR.AC-4"]
    (tmp_path / "p.lg").write_text(POLICY)
    out = subprocess.run([sys.executable, "-m", "layergate.engine.cli", "report", "controls",
                          str(tmp_path / "p.lg"), "--require", "SP800-207,OWASP-NHI-09"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.strip().endswith("required but covered by no layer: OWASP-NHI-09")
