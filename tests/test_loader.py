"""Reading policy files, directories and data documents."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from layergate.dsl import PolicyError, load_data, load_policy, parse_data


def _codes(call) -> list[str]:
    with pytest.raises(PolicyError) as info:
        call()
    return info.value.codes


def test_a_directory_is_every_policy_file_in_it(tmp_path: Path) -> None:
    (tmp_path / "10-order.lg").write_text("layers [identity, rbac]\n")
    (tmp_path / "identity.lg").write_text("layer identity { allow * on * }\n")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "rbac.lg").write_text("layer rbac { allow read on * }\n")
    (tmp_path / "notes.txt").write_text("not a policy")
    policy = load_policy(tmp_path)
    assert [layer.name for layer in policy.layers] == ["identity", "rbac"]
    assert [Path(s.name).name for s in policy.sources] == ["10-order.lg", "identity.lg", "rbac.lg"]


def test_missing_file_and_empty_directory(tmp_path: Path) -> None:
    assert _codes(lambda: load_policy(tmp_path / "nope.lg")) == ["file_not_found"]
    assert _codes(lambda: load_policy(tmp_path)) == ["file_not_found"]


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.lg"
    path.write_bytes(b"layer a { allow * on * when context.x == \"\xe9\" }")
    assert _codes(lambda: load_policy(path)) == ["file_unreadable"]


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.lg"
    path.write_text("layer a {\n  allow * on * when context.x = 1\n}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.format().splitlines()[0] == (
        f"{path}:2:31: single_equals: `=` is assignment; compare with `==`")
    assert diagnostic.format().splitlines()[2].index("^") == 4 + 30


def test_data_files(tmp_path: Path) -> None:
    good = tmp_path / "data.yaml"
    good.write_text("accounts:\n  sa-1: {roles: [reader]}\n")
    assert load_data(good) == {"accounts": {"sa-1": {"roles": ["reader"]}}}
    assert _codes(lambda: load_data(tmp_path / "missing.json")) == ["file_not_found"]
    with pytest.raises(PolicyError) as info:
        parse_data('{"a": 1,\n "b": }', "data.json")
    assert info.value.codes == ["invalid_data"]
    assert (info.value.diagnostics[0].span.line, info.value.diagnostics[0].span.column) == (2, 7)
    assert _codes(lambda: parse_data("[1, 2]", "data.json")) == ["invalid_data"]
    assert _codes(lambda: parse_data("a: [", "data.yaml")) == ["invalid_data"]
    assert parse_data("", "empty.yaml") == {}


@pytest.mark.parametrize(("text", "name", "said"), [
    ('{"accounts": {"sa": {"name": "\\ud800"}}}', "data.json", "surrogate"),  # half a pair
    ('{"accounts": {"\\udfff": {}}}', "data.json", "surrogate"),  # ... as a key
    ('accounts:\n  sa: {name: "\\ud800"}\n', "data.yaml", "surrogate"),
    ('{"accounts": {"sa": {"limit": ' + "9" * 20 + "}}}", "data.json", "beyond +-(2^53 - 1)"),
    ('{"accounts": {"sa": {"limit": ' + "9" * 400 + "}}}", "data.json", "beyond +-(2^53 - 1)"),
    ("accounts: {sa: {1: x}}", "data.yaml", "not a string"),
    ("accounts: {sa: {since: 2020-01-01}}", "data.yaml", "quote it"),
    ('{"accounts": {"sa": {"limit": ' + "9" * 5_000 + "}}}", "data.json", "too long"),
    ("accounts: {sa: {limit: " + "9" * 5_000 + "}}", "data.yaml", "too long"),
])
def test_data_that_json_cannot_hold_is_invalid(text: str, name: str, said: str) -> None:
    """Tables and revisions are JSON of doubles and valid Unicode: what they cannot hold
    would fail there (a TypeError, an OverflowError), so it fails here, coded."""
    with pytest.raises(PolicyError) as info:
        parse_data(text, name)
    assert info.value.codes == ["invalid_data"]
    assert said in info.value.diagnostics[0].message
    assert parse_data('{"a": {"b": "\\ud83d\\ude00"}}', "data.json") == {"a": {"b": "\U0001F600"}}


def test_a_data_problem_names_where_it_is() -> None:
    """Integers compare as doubles, so data may hold them only where a double is exact."""
    edge = 2**53 - 1
    assert parse_data(f'{{"a": [{edge}, -{edge}, 1e300]}}', "data.json") == {
        "a": [edge, -edge, 1e300]}
    for text, name, where in [
        ('{"accounts": {"sa-1": {"ids": [1, 9007199254740992]}}}', "data.json",
         '`data.accounts["sa-1"].ids[1]`'),
        ('{"accounts": {"sa_1": {"ids": [-9007199254740993]}}}', "data.json",
         "`data.accounts.sa_1.ids[0]`"),
        ("a:\n  - {b: {1: x}}\n", "data.yaml", "`data.a[0].b`"),
    ]:
        with pytest.raises(PolicyError) as info:
            parse_data(text, name)
        assert info.value.diagnostics[0].message.startswith(where + " ")


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    from layergate.dsl.parser import parse_module

    text = "layer a {\n  allow read on doc\n}\n"
    first = parse_module(text, "cached.lg")
    assert parse_module(text, "cached.lg") is first  # same name and text: the kept AST
    assert parse_module(text, "other.lg") is not first  # spans name their file
    assert parse_module(text + "\n", "cached.lg") is not first
    broken = "layer a {\n  allow read on\n}\n"
    for _ in range(2):  # a failure is raised every time, never kept as a result
        with pytest.raises(PolicyError):
            parse_module(broken, "cached.lg")
    policy = tmp_path / "policy.lg"
    policy.write_text(text)
    assert load_policy(policy).layers[0].rules[0].id == "a.1"
    policy.write_text(text.replace("read", "write"))
    assert load_policy(policy).layers[0].rules[0].actions.names == ("write",)


@pytest.mark.parametrize("enabled", [True, False])
def test_parsing_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    import gc

    from layergate.dsl.parser import parse_module

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        parse_module("layer gc_state {\n  allow read on doc\n}\n", f"gc-{enabled}.lg")
        assert gc.isenabled() is enabled
        with pytest.raises(PolicyError):
            parse_module("layer gc_state {\n  allow read on\n}\n", f"gc-{enabled}.lg")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def _edges(node: object) -> tuple[int, int, int, int]:
    span = node.span  # type: ignore[attr-defined]
    return span.line, span.column, span.end_line, span.end_column


def test_spans_run_from_first_to_last_token_parentheses_included() -> None:
    """A node spans its keywords and brackets; an expression written in parentheses keeps its
    own span, and its parent's span reaches over the parentheses."""
    from layergate.dsl.parser import parse_module

    text = ('layer l "d" {\n'
            '  r1: allow read on doc when not (context.x or (context.y)) and f((1), [ ])\n'
            '}\n')
    layer = parse_module(text, "spans.lg").layers[0]
    rule = layer.rules[0]
    condition = rule.condition
    assert _edges(layer) == (1, 1, 3, 2)
    assert layer.span.file == "spans.lg"
    assert _edges(rule) == (2, 3, 2, 76)  # from its name to the call's `)`
    assert (_edges(rule.actions), _edges(rule.resources)) == ((2, 13, 2, 17), (2, 21, 2, 24))
    assert _edges(condition) == (2, 30, 2, 76)
    assert _edges(condition.left) == (2, 30, 2, 60)  # `not (...)`: to the `)`
    assert _edges(condition.left.operand) == (2, 35, 2, 59)  # inside them
    assert _edges(condition.left.operand.right) == (2, 49, 2, 58)  # `context.y` alone
    call = condition.right
    assert _edges(call) == (2, 65, 2, 76)
    assert [_edges(arg) for arg in call.args] == [(2, 68, 2, 69), (2, 72, 2, 75)]


@pytest.mark.parametrize(("nots", "column", "end_column"), [(196, 820, 822), (197, 817, 826)])
def test_a_condition_nested_too_deep_is_reported_where_it_passes_the_limit(
        nots: int, column: int, end_column: int) -> None:
    """The node named is the last one at depth MAX_DEPTH + 1 (the expression starts at depth
    4): the `.x` step under 196 `not`s, the whole path under 197."""
    from layergate.dsl.parser import MAX_DEPTH, parse_module

    assert MAX_DEPTH == 200
    head = "layer a { allow * on * when "
    with pytest.raises(PolicyError) as info:
        parse_module(head + "not " * nots + "context.x }", f"deep-{nots}.lg")
    (problem,) = info.value.diagnostics
    assert problem.code == "expression_too_deep"
    assert _edges(problem) == (1, column, 1, end_column)
    assert parse_module(head + "not " * 195 + "context.x }", "deep-ok.lg").layers


def test_files_parsed_on_many_threads_keep_their_own_names() -> None:
    """One builder serves every parse, so parses take turns; each module's spans name its
    own file."""
    import threading

    from layergate.dsl.parser import parse_module

    results: dict[int, object] = {}

    def parse(n: int) -> None:
        text = "".join(f"layer t{n}_{k} {{ allow read on doc when context.n == {n} }}\n"
                       for k in range(40))
        results[n] = parse_module(text, f"thread-{n}.lg")

    threads = [threading.Thread(target=parse, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, module in results.items():
        files = {rule.condition.span.file for layer in module.layers  # type: ignore[attr-defined]
                 for rule in layer.rules}
        assert files == {f"thread-{n}.lg"}
        assert module.layers[0].rules[0].condition.right.value == n  # type: ignore[attr-defined]
    assert len(results) == 8

def test_a_process_forked_while_another_thread_parses_can_parse() -> None:
    """The parse lock is held by the parent's parsing thread at the fork; the child, where
    that thread does not exist, gets a free one instead of waiting forever."""
    import os

    from layergate.dsl import parser

    with parser._PARSING:  # as if another thread were parsing at the fork
        pid = os.fork()
        if pid == 0:  # the child: parse, and report by exit status (no pytest teardown)
            try:
                module = parser.parse_module("layer forked { allow read on doc }", "forked.lg")
                os._exit(0 if module.layers[0].name == "forked" else 1)
            finally:
                os._exit(2)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if done == (0, 0):
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the parse lock")
    assert os.waitstatus_to_exitcode(done[1]) == 0



def _problems(text: str) -> list[tuple[str, int, int]]:
    from layergate.dsl.parser import parse_module

    with pytest.raises(PolicyError) as info:
        parse_module(text, "problems.lg")
    return [(d.code, d.span.line, d.span.column) for d in info.value.diagnostics]


def test_a_syntax_error_after_a_too_deep_condition_is_reported_first() -> None:
    """The builder stops at the deep condition before lark has read the rest of the file;
    the syntax error further on still wins, as a coded diagnostic (never a lark exception)."""
    deep = "layer a { allow * on * when " + "not " * 197 + "context.x"
    assert _problems(deep + " oops }") == [("unexpected_token", 1, 832)]
    assert _problems(deep + " }\nlayer b { allow * on * when a && b }") == [
        ("c_style_operator", 2, 31)]
    assert _problems(deep + " }\nlayer b { allow * on * when context.x = 1 }") == [
        ("single_equals", 2, 39)]
    assert _problems(deep + " }\n") == [("expression_too_deep", 1, 817)]


@pytest.mark.parametrize("literal", [
    '"a\tb"',  # a raw tab: JSON strings need it escaped
    '"\\ud800"',  # half a surrogate pair: not a character
    "1" * 5_000,  # more digits than Python reads as an int
])
def test_a_literal_with_no_valid_value_is_a_coded_error(literal: str) -> None:
    text = f"layer a {{ allow * on * when context.x == {literal} }}\n"
    assert _problems(text) == [("invalid_literal", 1, 42)]
    assert _problems(text + "layer {") == [("unexpected_token", 2, 7)]  # syntax first


def test_a_name_that_starts_with_a_path_root_is_one_name_in_every_parser() -> None:
    """`database` is a name, not the root `data` and a name `base`: also when the file is
    parsed again to report an error further on (a syntax error, a bad literal)."""
    from layergate.dsl.parser import parse_module

    head = "const database = 1\nlayer subjects {\n  allow * on * when database == 1\n"
    module = parse_module(head + "}\n", "roots.lg")
    assert module.layers[0].name == "subjects"
    reference = module.layers[0].rules[0].condition.left
    assert (type(reference).__name__, reference.name) == ("ConstRef", "database")
    assert _problems(head + "  allow * on * when x = 1\n}\n") == [("single_equals", 4, 23)]
    assert _problems(head + '  allow * on * when x == "\\ud800"\n}\n') == [
        ("invalid_literal", 4, 26)]


def test_escaped_characters_and_surrogate_pairs_are_read() -> None:
    from layergate.dsl.parser import parse_module

    module = parse_module('layer a { allow * on * when context.x in ["a\\tb", "\\ud83d\\ude00"] }',
                          "escapes.lg")
    assert module.layers[0].rules[0].condition.container.values == ("a\tb", "\U0001F600")
