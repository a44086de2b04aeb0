"""The layering analyzer: each finding code, the bundled examples, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from layergate.dsl import load_data, load_policy, parse_policy
from layergate.engine.analyzer import analyze, trivially_true

from .conftest import EXAMPLES

RBAC_ONLY = """
layers [identity, rbac, scope, request]
role deployer { [deploy, rollback] on deployment }
role reader { read on * }
layer identity { allow * on * }
layer rbac { allow * on * when grants(subject.properties.roles) }
layer scope { everything: allow * on * }
layer request { allow * on * when true }
"""


def _codes(text: str, data: dict | None = None, **options: object) -> list[tuple[str, str]]:
    return [(f.code, f.level) for f in analyze(parse_policy(text, "p.lg", data), data,
                                               **options)]


def test_a_policy_whose_rbac_layer_is_the_only_gate_is_flagged_for_each_action() -> None:
    findings = analyze(parse_policy(RBAC_ONLY, "p.lg"))
    flagged = [f for f in findings if f.code == "single_layer_allow"]
    assert {f.message.split("`")[1] for f in flagged} == {"identity", "scope", "request"}
    assert all(f.level == "error" for f in flagged)
    for action in ("deploy", "rollback", "read"):
        assert all(f"`{action}`" in f.message for f in flagged), action
    assert flagged[0].span.line == 5 and "fix:" in flagged[0].format()


def test_a_properly_layered_policy_passes() -> None:
    text = RBAC_ONLY.replace("layer identity { allow * on * }",
                             'layer identity { allow * on * when subject.type == "sa" }')
    assert ("single_layer_allow", "error") not in _codes(text)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir()
                                           if (p / "policy.lg").exists()))
def test_the_bundled_examples_are_clean(example: str) -> None:
    data = load_data(EXAMPLES / example / "data.json")
    policy = load_policy(EXAMPLES / example / "policy.lg", data)
    assert [f.format() for f in analyze(policy, data)] == []


def test_required_layers_must_gate_and_exist() -> None:
    text = """layers [identity, rbac, request]
    layer identity { allow * on * when subject.type == "sa" }
    layer rbac { allow * on * when context.ok }
    layer request { allow * on * }
    """
    assert _codes(text) == []
    assert _codes(text, require_layers=["request"]) == [("single_layer_allow", "error")]
    assert ("missing_layer", "error") in _codes(text, require_layers=["scope"])


def test_shadowed_and_overridden_rules() -> None:
    text = """layer a {
      deny delete on * when context.locked
      allow * on *
      allow read on doc when context.x
      never: allow purge on doc
      deny purge on *
    }
    layer b { allow * on * when context.y }
    """
    codes = _codes(text)
    assert codes.count(("shadowed_rule", "warning")) == 2
    assert ("overridden_allow", "warning") in codes


def test_roles_that_grant_nothing_or_are_never_used() -> None:
    text = """role empty {}
    role lonely { read on doc }
    role used { read on doc }
    layer a { allow * on * when grants(data.sa[subject.id].roles) }
    layer b { allow * on * when context.ok }
    """
    data = {"sa": {"s": {"roles": ["used", "empty"]}}}
    assert _codes(text, data) == [("empty_role", "warning"), ("unused_role", "warning")]


def test_attributes_no_data_entry_provides() -> None:
    text = """layer a { allow * on * when data.sa[subject.id].namespce == "x" }
    layer b { allow * on * when data.sa[subject.id].namespace == "y" }
    """
    data = {"sa": {"s1": {"namespace": "x"}, "s2": {"namespace": "y"}}}
    findings = analyze(parse_policy(text, "p.lg", data), data)
    assert [(f.code, f.span.line) for f in findings] == [("unprovidable_attribute", 1)]
    assert "namespce" in findings[0].message


def test_trivially_true_conditions() -> None:
    def cond(text: str):
        return parse_policy(f"layer a {{ allow * on * when {text} }}").layers[0].rules[0].condition

    for text in ("true", "not false", "context.x or true", "present(subject.id)", '"a" == "a"'):
        assert trivially_true(cond(text)), text
    for text in ("context.x", "true and context.x", "present(context.x)", "false"):
        assert not trivially_true(cond(text)), text


def test_lint_command_exit_codes_and_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lg"
    bad.write_text(RBAC_ONLY)
    cli = [sys.executable, "-m", "layergate.engine.cli", "lint"]
    result = subprocess.run([*cli, str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "single_layer_allow" in result.stdout and "3 error(s)" in result.stdout
    result = subprocess.run([*cli, str(bad), "--format", "json"], capture_output=True,
                            text=True, timeout=60)
    findings = json.loads(result.stdout)
    assert {f["code"] for f in findings} == {"single_layer_allow"}
    assert all(f["file"] == str(bad) and f["line"] > 0 for f in findings)
    good = EXAMPLES / "cicd-deploy"
    result = subprocess.run([*cli, str(good / "policy.lg"), "--data", str(good / "data.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "0 error(s), 0 warning(s)" in result.stdout
