"""Decision tables and the Authorizer: serialization, revisions, compile errors, backends."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import orjson
import pytest

from layergate.dsl import PolicyError, ast, load_data, load_policy, parse_policy
from layergate.dsl.loader import compile_sources
from layergate.engine import (
    Authorizer,
    ExtensionMissing,
    RequestError,
    Tables,
    TablesFormatError,
    _eval,
    compile_policy,
    compiler,
    opcodes,
)
from layergate.engine.tables import FORMAT_VERSION, MAGIC

from .conftest import EXAMPLES

EXAMPLE_DIRS = sorted(p for p in EXAMPLES.iterdir() if (p / "policy.lg").exists())


def _compile(example: Path) -> Tables:
    data = load_data(example / "data.json")
    return compile_policy(load_policy(example / "policy.lg", data), data)


def test_extension_and_python_agree_on_numbering() -> None:
    _eval._check_opcodes()
    assert opcodes.ERROR_CODES[opcodes.E_INVALID] == "invalid_value"


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_tables_round_trip_through_bytes(example: Path) -> None:
    tables = _compile(example)
    blob = tables.to_bytes()
    again = Tables.from_bytes(blob)
    assert again == tables
    assert again.to_bytes() == blob
    assert _compile(example).to_bytes() == blob  # compiling is deterministic


def test_revision_changes_with_policy_or_data_and_only_then(tmp_path: Path) -> None:
    text = 'layer a { allow * on * when data.docs[subject.id].ok }\n'
    data = {"docs": {"s": {"ok": True}}}
    base = compile_policy(parse_policy(text, "one.lg", data), data).revision
    assert compile_policy(parse_policy(text, "elsewhere/two.lg", data), data).revision == base
    assert compile_policy(parse_policy(text + "# note\n", "one.lg", data), data).revision != base
    changed = {"docs": {"s": {"ok": False}}}
    assert compile_policy(parse_policy(text, "one.lg", changed), changed).revision != base
    wider = {"docs": {"s": {"ok": True}, "t": {"ok": False}}}
    wide = compile_policy(parse_policy(text, "one.lg", wider), wider).revision
    assert wide != base
    reordered = {"docs": {"t": {"ok": False}, "s": {"ok": True}}}  # the same data, keys reordered
    assert list(reordered["docs"]) != list(wider["docs"])
    assert compile_policy(parse_policy(text, "one.lg", reordered), reordered).revision == wide


def test_foreign_stale_and_corrupt_bytes_are_refused() -> None:
    blob = _compile(EXAMPLE_DIRS[0]).to_bytes()
    with pytest.raises(TablesFormatError, match="bad magic"):
        Tables.from_bytes(b"PK\x03\x04" + blob)
    stale = MAGIC + (FORMAT_VERSION + 1).to_bytes(4, "big") + blob[len(MAGIC) + 4:]
    with pytest.raises(TablesFormatError, match="recompile"):
        Tables.from_bytes(stale)
    with pytest.raises(TablesFormatError, match="corrupt"):
        Tables.from_bytes(blob[:-20])
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01  # one bit, e.g. a digit of an index: caught by the checksum
    with pytest.raises(TablesFormatError, match="checksum"):
        Tables.from_bytes(bytes(flipped))


def test_data_that_contradicts_the_policy_is_a_coded_compile_error() -> None:
    text = ("role reader { read on doc }\n"
            "layer a {\n  allow * on * when grants(data.sa[subject.id].roles)\n}\n")
    data = {"sa": {"s1": {"roles": ["reader"]}, "s2": {"roles": ["raeder"]}}}
    policy = parse_policy(text, "p.lg", data)
    with pytest.raises(PolicyError) as info:
        compile_policy(policy, data)
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "unknown_role"
    assert (diagnostic.span.file, diagnostic.span.line, diagnostic.span.column) == ("p.lg", 3, 21)
    assert "s2" in diagnostic.message and "raeder" in diagnostic.message


def test_an_index_too_large_is_a_coded_compile_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "MAX_INDEX_CELLS", 4)
    policy = parse_policy("layer a { allow [r, w] on [x, y] }\n", "p.lg")
    with pytest.raises(PolicyError) as info:
        compile_policy(policy)
    assert info.value.codes == ["index_too_large"]


def test_compile_stages_are_named_and_timed() -> None:
    report = compiler.CompileReport()
    data = load_data(EXAMPLE_DIRS[0] / "data.json")
    compile_policy(load_policy(EXAMPLE_DIRS[0] / "policy.lg", data), data, report)
    assert list(report.stages) == ["resolve", "normalize", "intern", "index", "seal"]


def test_the_index_sends_requests_only_to_rules_that_can_apply() -> None:
    text = """layer a {
      allow read on doc
      deny * on doc when context.x
      allow write on *
      allow * on *
    }
    """
    tables = compile_policy(parse_policy(text))
    evaluator = _python_twin(tables)
    sid = {s: i for i, s in enumerate(tables.strings)}

    def rules(action: int, resource_type: int) -> list[str]:
        bucket = evaluator.bucket(0, action, resource_type)
        members = tables.bucket_rules[tables.bucket_start[bucket]:tables.bucket_start[bucket + 1]]
        return [tables.rule_ids[r] for r in members]

    assert rules(sid["read"], sid["doc"]) == ["a.2", "a.1", "a.4"]
    assert rules(sid["write"], sid["doc"]) == ["a.2", "a.3", "a.4"]
    assert rules(sid["write"], -1) == ["a.3", "a.4"]
    assert rules(-1, -1) == ["a.4"]
    assert rules(-1, sid["doc"]) == ["a.2", "a.4"]


def _python_twin(tables: Tables):
    from layergate.engine.pyeval import TableEvaluator

    return TableEvaluator(tables)


def test_authorizer_from_files_and_from_compiled(tmp_path: Path) -> None:
    example = EXAMPLES / "invoice"
    authorizer = Authorizer.from_files(example / "policy.lg", example / "data.json")
    path = tmp_path / "invoice.lgt"
    path.write_bytes(authorizer.tables.to_bytes())
    loaded = Authorizer.from_compiled(path)
    twin = Authorizer.from_compiled(path, backend="python")
    request = {"subject": {"type": "service_account", "id": "billing-eu"},
               "action": {"name": "read"},
               "resource": {"type": "invoice", "id": "i",
                            "properties": {"customer_id": "cust-100"}}}
    for engine in (authorizer, loaded, twin):
        decision = engine.check(request)
        assert decision.allowed and decision.revision == authorizer.revision
    with pytest.raises(RequestError) as info:
        authorizer.check({"subject": {"type": "sa"}, "action": {"name": "read"}})
    assert info.value.field == "subject.id"
    with pytest.raises(ValueError, match="backend"):
        Authorizer(authorizer.tables, backend="fast")


def test_a_missing_extension_is_reported_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "layergate.engine._eval", None)
    tables = _compile(EXAMPLES / "invoice")
    with pytest.raises(ExtensionMissing, match="not built"):
        Authorizer(tables)
    assert Authorizer(tables, backend="python").check  # the twin only when asked for


def test_a_missing_request_reader_stops_the_server_loudly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import layergate.engine

    monkeypatch.setitem(sys.modules, "layergate.engine._wire", None)
    monkeypatch.delattr(layergate.engine, "_wire", raising=False)  # as if never imported
    monkeypatch.delitem(sys.modules, "layergate.engine.wire", raising=False)
    with pytest.raises(ExtensionMissing, match=r"request reader .* not built"):
        importlib.import_module("layergate.engine.wire")


@pytest.mark.parametrize("module", ["layergate.dsl._lalr", "layergate.dsl._build"])
def test_a_missing_compiled_parser_is_reported_loudly(
        monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    import importlib

    import layergate.dsl

    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delattr(layergate.dsl, module.rsplit(".", 1)[1], raising=False)
    monkeypatch.delitem(sys.modules, "layergate.dsl.parser", raising=False)
    with pytest.raises(ExtensionMissing, match=r"compiled parser .* not built"):
        importlib.import_module("layergate.dsl.parser")


def test_evaluators_are_safe_to_share_between_threads() -> None:
    authorizer = Authorizer.from_files(EXAMPLES / "invoice" / "policy.lg",
                                       EXAMPLES / "invoice" / "data.json")
    requests = [
        {"subject": {"type": "service_account", "id": "billing-eu"}, "action": {"name": "submit"},
         "resource": {"type": "invoice", "id": f"i{n}",
                      "properties": {"customer_id": "cust-100", "amount": n, "currency": "EUR"}}}
        for n in range(-50, 60_000, 97)
    ]
    expected = [d.decision for d in authorizer.check_batch(requests)]
    failures: list[str] = []

    def work() -> None:
        for _ in range(20):
            got = [authorizer.check(r).decision for r in requests[:50]]
            if got != expected[:50]:
                failures.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert expected.count("allow") > 0 and expected.count("deny") > 0


def test_compile_and_eval_compiled_from_the_command_line(tmp_path: Path) -> None:
    example = EXAMPLES / "cicd-deploy"
    output = tmp_path / "cicd.lgt"
    cli = [sys.executable, "-m", "layergate.engine.cli"]
    result = subprocess.run([*cli, "compile", str(example / "policy.lg"), "--data",
                             str(example / "data.json"), "-o", str(output)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert output.read_bytes().startswith(MAGIC)
    result = subprocess.run([*cli, "eval", "--compiled", str(output), "--requests",
                             str(example / "requests.jsonl"), "--caller",
                             "spiffe://example.org/ns/edge/sa/deploy-gateway"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"decision":"allow"') == 2


def test_policies_sources_are_kept_for_the_revision() -> None:
    policy = compile_sources([ast.Source("a.lg", "layer a { allow * on * }\n")])
    assert policy.sources[0].text.startswith("layer a")


READER_POLICY = """layer a {
  deny * on doc when context.blocked
  allow read on doc when resource.properties.owner == subject.id
    and context.amount < 10
}
"""


def _doc_request(**context: object) -> dict:
    return {"subject": {"type": "svc", "id": "alice"}, "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d1", "properties": {"owner": "alice"}},
            "context": dict(context)}


def test_decisions_with_errors_or_explanations_are_shared_and_exact() -> None:
    authorizer = Authorizer(compile_policy(parse_policy(READER_POLICY)))
    first = authorizer.check(_doc_request(blocked=False))  # context.amount is missing
    again = authorizer.check(_doc_request(blocked=False))
    assert first is again and not first.allowed
    assert [(e.rule, e.code, e.path) for e in first.errors] == [
        ("a.2", "missing_attribute", "context.amount")]
    typed = authorizer.check(_doc_request(blocked=False, amount="ten"))
    assert typed is not first and typed.error_codes == ("type_error",)
    explained = authorizer.check(_doc_request(blocked=False, amount=1), explain=True)
    assert explained.allowed and explained.layers
    assert authorizer.check(_doc_request(blocked=False, amount=2), explain=True) is explained
    assert authorizer.check(_doc_request(blocked=False, amount=2)) is not explained


def test_the_one_pass_reader_ignores_extra_keys_and_sends_odd_input_the_long_way() -> None:
    from types import MappingProxyType

    authorizer = Authorizer(compile_policy(parse_policy(READER_POLICY)))
    request = _doc_request(blocked=False, amount=1, unused={"deep": [1, 2]})
    request["resource"]["properties"][7] = "a non-string key"  # the Python API allows it
    request["extra"] = None
    assert authorizer.check(request).allowed
    proxied = dict(request, resource=MappingProxyType(request["resource"]))
    assert authorizer.check(proxied).allowed  # a Mapping, not a dict: normalized first
    stranger = _doc_request(blocked=False, amount=1)
    stranger["resource"]["properties"]["owner"] = "".join(["al", "ice"])  # equal, new object
    assert authorizer.check(stranger).allowed
    stranger["resource"]["properties"]["owner"] = "bob"
    assert not authorizer.check(stranger).allowed
    with pytest.raises(RequestError) as caught:
        authorizer.check(dict(request, subject={"type": "svc", "id": 7}))
    assert caught.value.field == "subject.id"


ENTITY_POLICY = """layer a {
  deny * on * when not cidr(context.ip, data.teams[data.accounts[subject.id].team].networks)
  allow read on doc when data.accounts[subject.id].level >= data.teams[subject.id].level
}
"""
ENTITY_DATA = {
    # "ann" is a key of both documents, with different fields: rows are per document.
    "accounts": {"ann": {"team": "blue", "level": 5}, "bo": {"team": "red", "level": 1},
                 "cy": {"team": "bad", "level": 9}, "ann-2": {"team": "blue", "level": 7}},
    "teams": {"ann": {"level": 3, "networks": []}, "bo": {"level": 2, "networks": []},
              "cy": {"level": 1, "networks": []}, "ann-2": {"level": 9, "networks": []},
              "blue": {"level": 0, "networks": ["10.0.0.0/8"]},
              "red": {"level": 0, "networks": ["192.168.0.0/16", "10.1.0.0/16"]},
              "bad": {"level": 0, "networks": ["not-a-network"]}},
}


class _OddStr(str):
    """A str subclass with its own hash: every evaluator looks keys up as a dict would."""

    def __hash__(self) -> int:
        return 7


def _entity_request(subject: str, ip: str) -> dict:
    return {"subject": {"type": "svc", "id": subject}, "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d"}, "context": {"ip": ip}}


def test_the_reader_remembers_keys_by_place_and_is_never_misled_by_it() -> None:
    """Keys met at the same place of a dict as in the last one are not looked up again; keys
    in another order, other objects of equal text, places past the remembered ones, str
    subclasses and non-str keys at a remembered place read as they would the first time."""
    authorizer = Authorizer(compile_policy(parse_policy(READER_POLICY)))
    twin = Authorizer(compile_policy(parse_policy(READER_POLICY)), backend="python")
    filler = {f"f{n}": n for n in range(12)}
    contexts = [
        {"blocked": False, "amount": 1},
        {"amount": 1, "blocked": False},                       # the other order
        {"amount": 20, "blocked": False},                      # same keys, other answer
        {"blocked": True, "amount": 1},
        {"".join(["am", "ount"]): 1, "blocked": False},       # an equal key, another object
        {**filler, "blocked": False, "amount": 1},             # past the remembered places
        {**filler, "amount": 1},                               # blocked missing: denied
        {**filler, "amount": 30},
        {_OddStr("amount"): 1, "blocked": False},             # found as a dict would: not
        {3: "x", "blocked": False, "amount": 1},               # a non-str key first
        {"blocked": None, "amount": 1},                        # None reads as absent: denied
        {"blocked": False, "amount": 1},
    ]
    requests = [_doc_request(**{}) | {"context": c} for c in contexts]
    expected = [(d.allowed, d.rule, d.error_codes) for d in twin.check_batch(requests)]
    assert [e[0] for e in expected] == [True, True, False, False, True, True, False, False,
                                        False, True, False, True]
    for _ in range(2):  # the second time, every place is remembered from the first
        assert [(d.allowed, d.rule, d.error_codes)
                for d in authorizer.check_batch(requests)] == expected
        assert [(d.allowed, d.rule, d.error_codes)
                for d in map(authorizer.check, requests)] == expected
    for k in range(len(requests)):  # and after every other request
        for r in (requests[k - 1], requests[k]):
            got = authorizer.check(r)
            assert (got.allowed, got.rule, got.error_codes) == expected[requests.index(r)]


def test_pre_joined_rows_are_found_by_key_text_per_document() -> None:
    from layergate.engine import Interpreter

    tables = compile_policy(parse_policy(ENTITY_POLICY, "entities.lg", ENTITY_DATA),
                            ENTITY_DATA)
    cython, twin = Authorizer(tables), Authorizer(tables, backend="python")
    reference = Interpreter(parse_policy(ENTITY_POLICY, "entities.lg", ENTITY_DATA),
                            ENTITY_DATA)
    requests = [
        _entity_request("ann", "10.2.3.4"),     # ann: level 5 >= teams.ann 3, in blue's net
        _entity_request("bo", "10.1.2.3"),      # bo: 1 < 2, denied by the allow rule
        _entity_request("ann", "192.168.1.1"),  # outside blue's network
        _entity_request("bo", "192.168.1.1"),   # in red's first network; level too low
        _entity_request("cy", "10.0.0.1"),      # the team's network text is invalid
        _entity_request("ann-2", "10.0.0.1"),   # 7 < 9
        _entity_request("nobody", "10.0.0.1"),  # not an account
        _entity_request("".join(["an", "n"]), "10.0.0.1"),  # equal text, another object
        _entity_request(_OddStr("ann"), "10.0.0.1"),
    ]
    expected = [(True, "a.2"), (False, None), (False, "a.1"), (False, None),
                (False, "a.1"), (False, None), (False, "a.1"), (True, "a.2"), (False, "a.1")]
    for evaluator in (cython, twin):
        batch = evaluator.check_batch(requests)  # one scratch space reused across items
        singles = [evaluator.check(r) for r in requests]
        for decisions in (batch, singles):
            assert [(d.allowed, d.rule) for d in decisions] == expected
    assert [d.allowed for d in reference.check_batch(requests)] == [e[0] for e in expected]
    invalid = cython.check(requests[4])
    assert ("a.1", "invalid_value") in [(e.rule, e.code) for e in invalid.errors]
    assert cython.check(requests[4]) is invalid  # the bad network is remembered as bad
    missing = cython.check(requests[6])
    assert [(e.rule, e.code) for e in missing.errors] == [("a.1", "unknown_entity")]


class _Flaky(str):
    """A key that hashes once (to go into its dict), then fails: reading the request raises
    an error of its own, not a RequestError."""

    def __hash__(self) -> int:
        if getattr(self, "hashed", False):
            raise RuntimeError("this request cannot be read")
        self.hashed = True
        return 1


def _window_requests() -> list:
    """Items of every kind, more than several windows of check_batch's read-ahead."""
    from types import MappingProxyType

    items: list = []
    for n in range(70):
        subject = ["ann", "bo", "cy", "ann-2", "nobody"][n % 5]
        ip = ["10.2.3.4", "10.1.2.3", "192.168.1.1", "bad ip"][n % 4]
        item = _entity_request(subject, ip)
        if n % 9 == 4:
            item["subject"] = {"type": "svc", "id": 7}  # malformed: denied with its field
        if n % 11 == 5:
            item = dict(item, resource=MappingProxyType(item["resource"]))  # the long way
        if n % 13 == 6:
            item["subject"]["id"] = _OddStr("ann")
        items.append(item)
    return items


def test_batches_read_ahead_decide_each_item_as_on_its_own() -> None:
    """check_batch reads items a window ahead of deciding them; every decision, every stop
    of the stopping semantics and a failing item land exactly where a loop of checks puts
    them."""
    tables = compile_policy(parse_policy(ENTITY_POLICY, "entities.lg", ENTITY_DATA),
                            ENTITY_DATA)
    cython = Authorizer(tables)
    items = _window_requests()

    def alone(item: object) -> object:
        try:
            return cython.check(item)
        except RequestError as error:
            return (False, error.field)

    def summary(decision: object) -> object:
        if isinstance(decision, tuple):
            return decision
        if decision.error_codes == ("invalid_request",):
            return (False, decision.errors[0].path)
        return decision

    expected = [alone(item) for item in items]
    assert [summary(d) for d in cython.check_batch(items)] == expected
    assert [summary(d) for d in cython.check_batch(iter(items))] == expected  # any iterable
    for semantic, stop in (("deny_on_first_deny", False), ("permit_on_first_permit", True)):
        for first in range(0, len(items), 7):  # stops at every place in a window
            part = items[first:]
            want = []
            for decision in map(alone, part):
                want.append(decision)
                allowed = decision[0] if isinstance(decision, tuple) else decision.allowed
                if allowed == stop:
                    break
            assert [summary(d) for d in cython.check_batch(part, semantic=semantic)] == want
    failing = _entity_request("ann", "10.2.3.4")
    failing[_Flaky("".join(["ex", "tra"]))] = 1  # no cached str hash: its own is used
    allowed, denied = _entity_request("ann", "10.2.3.4"), _entity_request("bo", "10.1.2.3")
    with pytest.raises(RuntimeError, match="cannot be read"):
        cython.check_batch([allowed] * 20 + [failing] + [allowed] * 5)
    # a stop before the failing item is reached returns, as item-by-item checks would
    decided = cython.check_batch([allowed, denied, failing], semantic="deny_on_first_deny")
    assert [d.allowed for d in decided] == [True, False]


class _Spoiler(Mapping):
    """A request that, when read, empties another request (its objects go away)."""

    def __init__(self, body: dict, victim: dict) -> None:
        self.body, self.victim = body, victim

    def __getitem__(self, key: str) -> object:
        for part in self.victim.values():
            part.clear()
        self.victim.clear()
        return self.body[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.body)

    def __len__(self) -> int:
        return len(self.body)


def test_a_request_read_the_long_way_never_pulls_items_read_ahead_from_under_the_batch() -> None:
    """Reading a request that is not a plain dict runs its own code, which could free objects
    of the items already read ahead; check_batch decides those first."""
    tables = compile_policy(parse_policy(ENTITY_POLICY, "entities.lg", ENTITY_DATA),
                            ENTITY_DATA)
    cython = Authorizer(tables)
    victims = [_entity_request("".join(["an", "n"]), "10.2.3.4") for _ in range(5)]
    spoiler = _Spoiler(_entity_request("bo", "10.1.2.3"), victims[-1])
    decisions = cython.check_batch([*victims, spoiler])
    assert [d.allowed for d in decisions] == [True] * 5 + [False]


class _Vandal(str):
    """A str whose own hash, once armed, empties other dicts and reuses their memory."""

    victims: list = []
    armed = False

    def __hash__(self) -> int:
        if _Vandal.armed:
            for victim in _Vandal.victims:
                for part in list(victim.values()):
                    if isinstance(part, dict):
                        part.clear()
                victim.clear()
            _Vandal.churn = ["".join(["1", str(n)]) for n in range(5000)]
        return 11


class _Unhashable(str):
    def __hash__(self) -> int:
        raise RuntimeError("no hash for this id")


def test_request_objects_that_run_code_never_pull_what_is_read_from_under_the_evaluator(
        ) -> None:
    """A str subclass (a key, a value) runs its own code when hashed: such a request is read
    from a copy of its own and decided before any later item is read, so whatever that code
    empties, each item is decided as a loop of checks decides it; its errors are raised."""
    tables = compile_policy(parse_policy(ENTITY_POLICY, "entities.lg", ENTITY_DATA),
                            ENTITY_DATA)
    cython, twin = Authorizer(tables), Authorizer(tables, backend="python")
    fresh = "".join(["10.2.", "3.4"])
    own = _entity_request("ann", fresh)
    own["context"][_Vandal("".join(["zz", "z"]))] = 1  # after the ip, which it frees
    _Vandal.victims, _Vandal.armed = [own["context"]], False
    expected = _outcome(twin.check(own))
    assert expected[0] == "allow"
    _Vandal.armed = True
    try:
        assert _outcome(cython.check(own)) == expected
        assert own["context"] == {}  # it did run
        own["context"].update({"ip": fresh, _Vandal("zzz"): 1})
        first, second = cython.check_batch([own, own])  # the first empties the second
        assert _outcome(first) == expected
        assert _outcome(second) == ("deny", "a", "a.1",
                                    [("a.1", "missing_attribute", "context.ip")])
        # its hash runs while it is decided (its data row is found by it): the next item is
        # emptied before it is read, as it would be if checked after it
        meddler = _entity_request(_Vandal("ann"), "10.2.3.4")
        victim = _entity_request("".join(["an", "n"]), "".join(["10.2.", "3.4"]))
        _Vandal.victims = [victim]
        decisions = cython.check_batch([_entity_request("bo", "10.1.2.3"), meddler, victim])
        assert [d.allowed for d in decisions] == [False, False, False]
        assert decisions[2].error_codes == ("invalid_request",)
        assert decisions[2].errors[0].path == "subject"
    finally:
        _Vandal.armed, _Vandal.victims = False, []
    unhashable = _entity_request(_Unhashable("ann"), "10.2.3.4")
    for backend in (cython, twin):
        with pytest.raises(RuntimeError, match="no hash"):
            backend.check(unhashable)
    with pytest.raises(RuntimeError, match="no hash"):
        cython.check_batch([_entity_request("ann", "10.2.3.4"), unhashable])


class _Meddler(str):
    """A key hashed as its text, whose own __eq__ (run when a lookup meets it), once armed,
    empties other dicts and reuses their memory."""

    victims: list = []
    armed = False

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        if _Meddler.armed:
            for victim in _Meddler.victims:
                victim.clear()
            _Meddler.churn = ["".join(["2", str(n)]) for n in range(5000)]
        return str.__eq__(self, other)


COMPUTED_KEY_POLICY = """layer a {
  deny * on * when context.source == "blocked"
  allow read on doc when context.meta[subject.id].ok
}
"""


def test_a_lookup_by_a_computed_key_that_may_run_a_keys_code_reads_from_a_copy() -> None:
    """A rule that indexes a request dict by a computed key, in a dict holding a key that is
    not a plain str (whose __eq__ the lookup may run), is decided again from a private copy:
    what that code empties is the caller's, never what the evaluator reads."""
    tables = compile_policy(parse_policy(COMPUTED_KEY_POLICY))
    cython, twin = Authorizer(tables), Authorizer(tables, backend="python")

    def request(source: str) -> dict:
        context = {"source": "".join(["fr", source]),
                   "meta": {_Meddler("".join(["ali", "ce"])): {"ok": True}}}
        return {"subject": {"type": "svc", "id": "alice"}, "action": {"name": "read"},
                "resource": {"type": "doc", "id": "d"}, "context": context}

    plain = request("esh")
    plain["context"]["meta"] = {"alice": {"ok": True}}
    assert cython.check(plain).allowed  # plain keys: no copy
    meddling = request("esh")
    expected = _outcome(twin.check(meddling))
    assert expected[0] == "allow"
    _Meddler.armed = True
    try:
        _Meddler.victims = [meddling["context"]]
        assert _outcome(cython.check(meddling)) == expected
        assert meddling["context"] == {}  # it ran, on the caller's dict
        items = [request("esh") for _ in range(5)]
        _Meddler.victims = [item["context"] for item in items[1:]]  # the first empties the rest
        decided = cython.check_batch(items)
        assert _outcome(decided[0]) == expected
        # each later item was emptied before it was read: its rules miss their attributes
        assert all(d.error_codes == ("missing_attribute",) and not d.allowed
                   for d in decided[1:])
    finally:
        _Meddler.armed, _Meddler.victims = False, []


def test_a_request_read_from_its_own_copy_may_nest_without_bound_and_hold_cycles() -> None:
    """The private copy of a request that runs code of its own copies every dict and list in
    it by a loop, not by recursion: deep nesting, shared parts and cycles are read as they
    are."""
    authorizer = Authorizer(compile_policy(parse_policy(READER_POLICY)))
    deep: list = []
    for _ in range(200_000):
        deep = [deep]
    request = _doc_request(blocked=False, amount=1, deep=deep)
    request["context"]["loop"] = request["context"]
    request["resource"]["properties"]["shared"] = request["context"]
    request["subject"]["id"] = _OddStr("alice")  # a str subclass: read from a copy
    assert authorizer.check(request).allowed
    assert [d.allowed for d in authorizer.check_batch([request, _doc_request(blocked=True)])] \
        == [True, False]


def _texts() -> list[str]:
    """Texts of every stored width (1, 2 and 4 bytes a character) and of lengths either side
    of each way the evaluator's text hash reads them (0-3, 4-16, over 16 bytes)."""
    out = []
    for length in (0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 50):
        for widest in ("", "\u00e9", "\u03b4", "\U0001f511"):
            text = ("k" * length + widest)[-max(length, 1):] if length else widest
            if text not in out:
                out.append(text)
    return out


def _fresh(text: str) -> str:
    """An equal str that is another object (what a decoder hands over)."""
    return "".join(list(text)) if len(text) > 1 else text


def test_request_strings_are_found_by_text_whatever_their_width_or_length() -> None:
    """The evaluator's own text hash finds data keys and policy strings as a dict does."""
    texts = _texts()
    tags = ", ".join(orjson.dumps(t).decode() for t in texts[::2])  # the listed tags
    policy = ("layer a {\n  allow read on doc when data.accounts[subject.id].ok\n"
              f"    and resource.properties.tag in [{tags}]\n}}\n")
    data = {"accounts": {t: {"ok": True} for t in texts}}
    tables = compile_policy(parse_policy(policy, "texts.lg", data), data)
    cython, twin = Authorizer(tables), Authorizer(tables, backend="python")

    def request(subject: str, tag: str) -> dict:
        return {"subject": {"type": "svc", "id": _fresh(subject)}, "action": {"name": "read"},
                "resource": {"type": "doc", "id": "d", "properties": {"tag": _fresh(tag)}}}

    listed, unlisted = texts[::2], texts[1::2]
    requests, expected = [], []
    for k, text in enumerate(texts):
        tag = listed[k % len(listed)]
        requests += [request(text, tag), request(text + "z", tag), request(text, tag + "z"),
                     request(text, unlisted[k % len(unlisted)])]
        expected += [True, False, False, False]
    for authorizer in (cython, twin):
        assert [d.allowed for d in authorizer.check_batch(requests)] == expected
        assert [authorizer.check(r).allowed for r in requests] == expected
    unknown = cython.check(requests[1])
    assert [(e.rule, e.code) for e in unknown.errors] == [("a.1", "unknown_entity")]


class _Slots:
    """An object whose __dict__ is a split (key-sharing) dict."""

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def test_dicts_are_read_alike_in_place_and_entry_by_entry() -> None:
    """The reader's in-place pass over a dict's entries (CPython 3.11) and PyDict_Next give
    the same decisions: plain dicts, dicts with deleted entries, with a non-str key, and an
    instance's split dict."""
    from layergate.bench.workload import build

    workload = build(10, requests=300)
    tables = compile_policy(parse_policy(workload.policy, "w.lg", workload.data),
                            workload.data)
    requests = orjson.loads(orjson.dumps(workload.requests))
    for n, item in enumerate(requests):
        context = item["context"]
        if n % 3 == 0:  # deleted entries among the live ones
            context["gone"] = 1
            item["resource"]["gone"] = 2
            del context["gone"], item["resource"]["gone"]
        if n % 5 == 1:
            item["resource"]["properties"][3] = "a key that is not a str"
        if n % 7 == 2:
            item["context"] = _Slots(**context).__dict__
    twin = Authorizer(tables, backend="python", clock=_workload_clock)
    expected = [_outcome(d) for d in twin.check_batch(requests)]
    old, available = _eval._read_dict_entries(True)
    _assert_cython_decides_either_way(_eval._read_dict_entries, old, tables, requests, expected)
    assert available == (sys.version_info[:2] == (3, 11)
                         and sys.implementation.name == "cpython")


def _assert_cython_decides(tables: Tables, requests: list[dict], expected: list) -> None:
    """A new Cython evaluator decides `requests` as `expected`, in a batch and one by one."""
    cython = Authorizer(tables, clock=_workload_clock)
    assert [_outcome(d) for d in cython.check_batch(requests)] == expected
    assert [_outcome(cython.check(r)) for r in requests] == expected


def _assert_cython_decides_either_way(switch: Callable[[bool], object], old: bool,
                                      tables: Tables, requests: list[dict],
                                      expected: list) -> None:
    """`_assert_cython_decides` with one of the evaluator's switches on, then off; the
    switch is set back to `old` after."""
    try:
        for enabled in (True, False):
            switch(enabled)
            _assert_cython_decides(tables, requests, expected)
    finally:
        switch(old)


def _workload_clock() -> float:
    from layergate.bench.micro import CLOCK_SECONDS

    return CLOCK_SECONDS


def _outcome(decision: object) -> tuple:
    return (decision.decision, decision.layer, decision.rule,
            [(e.rule, e.code, e.path) for e in decision.errors])


def test_more_action_and_type_pairs_than_the_route_cache_keeps() -> None:
    """Past the evaluator's cache of (action, resource type) pairs, requests still decide
    right (computed per request), and the pairs kept before stay right."""
    count = 700
    rules = "\n".join(f"  allow act{i} on doc when context.n == {i}" for i in range(count))
    roles = "\n".join(f"role r{i} {{ act{i} on file }}" for i in range(count))
    by_role = "  allow * on file when grants(subject.properties.roles)"
    text = f"{roles}\nlayer a {{\n{rules}\n{by_role}\n}}\n"
    tables = compile_policy(parse_policy(text, "routes.lg"))
    cython, twin = Authorizer(tables), Authorizer(tables, backend="python")

    def request(action: int, n: int, kind: str = "doc") -> dict:
        return {"subject": {"type": "svc", "id": "s", "properties": {"roles": [f"r{n}"]}},
                "action": {"name": f"act{action}"}, "resource": {"type": kind, "id": "x"},
                "context": {"n": n}}

    requests = [request(i, n, kind) for kind in ("doc", "file") for i in range(count)
                for n in (i, i + 1)]
    # a doc is allowed by rule act<i> when n == i; a file by role r<n>, which grants act<n>
    expected = [r["context"]["n"] == int(r["action"]["name"][3:]) for r in requests]
    for _ in range(2):  # the second pass reads the kept pairs
        assert [d.allowed for d in cython.check_batch(requests)] == expected
        assert [d.allowed for d in twin.check_batch(requests)] == expected


def test_compiling_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    policy = parse_policy(READER_POLICY)
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            compile_policy(policy)
            assert gc.isenabled() is enabled
            with pytest.raises(PolicyError):  # a data document the policy contradicts
                compile_policy(parse_policy(
                    "role r { read on doc }\nlayer a { allow * on * when "
                    "grants(data.accounts[subject.id].roles) }\n"),
                    {"accounts": {"sa": {"roles": ["nope"]}}})
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_compiling_leaves_no_garbage_for_the_cyclic_collector() -> None:
    """Everything a compile builds and drops is freed by reference counting: garbage in
    cycles would wait for (and slow) the next full collection (it was most of the builder)."""
    import gc

    from layergate.bench.workload import build

    workload = build(10)
    policy = parse_policy(workload.policy, "w.lg", workload.data)
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        compile_policy(policy, workload.data)
        assert gc.collect() == 0
    finally:
        (gc.enable if was else gc.disable)()


def test_more_networks_than_the_evaluator_keeps_parsed() -> None:
    """The table of parsed networks grows as needed and, at its largest, starts over: every
    check stays right either way."""
    count = 3000
    data = {"accounts": {f"sa{i}": {"net": f"10.{i // 256}.{i % 256}.0/24"}
                         for i in range(count)}}
    text = "layer a { allow * on * when cidr(context.ip, data.accounts[subject.id].net) }\n"
    tables = compile_policy(parse_policy(text, "nets.lg", data), data)
    requests = [{"subject": {"type": "svc", "id": f"sa{i}"}, "action": {"name": "read"},
                 "resource": {"type": "doc", "id": "d"},
                 "context": {"ip": f"10.{j // 256}.{j % 256}.7"}}
                for i in range(count) for j in (i, (i + 1) % count)]
    expected = [n % 2 == 0 for n in range(len(requests))]  # own network only
    for largest in (1 << 18, 512):  # 3,000 networks fit; then at most 256 are kept
        old = _eval._limit_parsed_networks(largest)
        try:
            cython = Authorizer(tables)
            for _ in range(2):
                assert [d.allowed for d in cython.check_batch(requests)] == expected
        finally:
            _eval._limit_parsed_networks(old)
    twin = Authorizer(tables, backend="python")
    assert [d.allowed for d in twin.check_batch(requests[:400])] == expected[:400]


@pytest.mark.parametrize(("data", "said"), [
    ({"accounts": {0: {}}}, "not a string"),
    ({"accounts": {"sa": {"roles": {"r"}}}}, "set"),
    ({"accounts": {"sa": {"limit": 2**70}}}, "beyond +-(2^53 - 1)"),
    ({"accounts": {"sa": {"name": "\ud800"}}}, "surrogate"),
    ({"accounts": {"sa": {"limit": float("nan")}}}, "NaN"),
])
def test_data_given_in_code_is_checked_like_a_data_file(data: dict, said: str) -> None:
    """Data passed to compile_policy directly (not loaded from a file) gets the same coded
    error, not a TypeError from writing the revision or the tables."""
    policy = parse_policy("layer a { allow * on * when data.accounts[subject.id].ok }")
    with pytest.raises(PolicyError) as info:
        compile_policy(policy, data)
    assert info.value.codes == ["invalid_data"]
    assert said in info.value.diagnostics[0].message


def test_grants_of_short_and_long_role_lists() -> None:
    """grants() over a data list of at most three roles tests them one by one (the
    evaluator keeps their indices beside the list); longer lists use the bitset. Both
    decide as the twin does, with inherited grants, repeated names and 130 roles (three
    bitset words)."""
    roles = "\n".join(f"role r{i} {{ act{i} on doc }}" for i in range(130))
    text = (f"{roles}\nrole heir extends r5, r129 {{ own on doc }}\n"
            "layer a {\n  allow * on doc when grants(data.accounts[subject.id].roles)\n}\n")
    lists = [[], ["r0"], ["r64", "r64"], ["heir"], ["r1", "r65", "r129"],
             ["r2", "r66", "r127", "r128"], [f"r{i}" for i in range(0, 130, 7)]]
    data = {"accounts": {f"sa{n}": {"roles": names} for n, names in enumerate(lists)}}
    tables = compile_policy(parse_policy(text, "grants.lg", data), data)
    actions = [f"act{i}" for i in range(130)] + ["own", "other"]
    requests = [{"subject": {"type": "svc", "id": f"sa{n}"}, "action": {"name": action},
                 "resource": {"type": "doc", "id": "d"}}
                for n in range(len(lists)) for action in actions]
    granted = [{f"act{r[1:]}" for r in names if r != "heir"}
               | ({"act5", "act129", "own"} if "heir" in names else set())
               for names in lists]
    expected = [r["action"]["name"] in granted[int(r["subject"]["id"][2:])] for r in requests]
    cython, twin = Authorizer(tables), Authorizer(tables, backend="python")
    assert sum(expected) == 1 + 1 + 3 + 3 + 4 + 19
    assert [d.allowed for d in cython.check_batch(requests)] == expected
    assert [cython.check(r).allowed for r in requests] == expected
    assert [d.allowed for d in twin.check_batch(requests)] == expected


def test_tables_in_huge_page_mappings_decide_alike() -> None:
    """At 1,000 roles the large tables are carved from mappings advised for huge pages;
    tables in ordinary buffers decide the same."""
    from layergate.bench.workload import build

    workload = build(1000, requests=400)
    tables = compile_policy(parse_policy(workload.policy, "w.lg", workload.data),
                            workload.data)
    requests = orjson.loads(orjson.dumps(workload.requests))
    twin = Authorizer(tables, backend="python", clock=_workload_clock)
    expected = [_outcome(d) for d in twin.check_batch(requests)]
    old = _eval._huge_table_pages(True)
    _assert_cython_decides_either_way(_eval._huge_table_pages, old, tables, requests, expected)
