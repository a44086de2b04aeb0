"""The decision log: records for every RPC shape, masking, drops, the hash chain, rotation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from layergate.clients import Client
from layergate.clients._gen import authz_pb2 as pb
from layergate.engine.decision import Decision, LayerResult
from layergate.engine.decisionlog import MASKED, DecisionLog, read, verify
from layergate.engine.server import PolicyHolder, PolicySource, Server, ServerOptions

from .conftest import EXAMPLES

INVOICE = EXAMPLES / "invoice"
DECISION = Decision(True, "a", "a.1", ("a.1",), (), (LayerResult("a", "allow", "a.1"),),
                    "sha256:test")


def _request(amount: float) -> dict:
    return {"subject": {"type": "service_account", "id": "billing-eu"},
            "action": {"name": "submit"},
            "resource": {"type": "invoice", "id": "inv-1",
                         "properties": {"customer_id": "cust-100", "amount": amount,
                                        "currency": "EUR"}},
            "context": {"token": "secret-token"}}


def _write(path: Path, count: int, **options: object) -> None:
    log = DecisionLog(path, **options)
    for n in range(count):
        log.record(DECISION, {"subject": {"type": "s", "id": f"s{n}"}}, None, f"d-{n}", 1e-6)
    log.close()


def test_every_rpc_shape_is_recorded_with_masking(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    holder = PolicyHolder(PolicySource((INVOICE / "policy.lg",), INVOICE / "data.json"))
    options = ServerOptions(port=0, watch_seconds=0, decision_log=path,
                            log_mask=("context.token", "resource.properties.amount"))
    server = Server(holder, options).start()
    ids = []
    try:
        with Client(f"127.0.0.1:{server.port}") as client:
            one = client.check(_request(10))
            assert "layers" not in one  # logged in explain mode, answered as asked
            ids.append(one["decision_id"])
            ids += [d["decision_id"] for d in client.check_batch([_request(20),
                                                                  _request(90_000)])]
            ids += [d["decision_id"] for d in client.stream([_request(30), _request(40)])]
            bad = pb.BatchCheckRequest()
            bad.items.add(resource=pb.Resource(type="invoice"))
            ids.append(client.stub.BatchCheck(bad).results[0].decision_id)
    finally:
        server.stop(grace=1)
    records = read([path])
    assert [r["id"] for r in records] == ids
    assert [r["decision"] for r in records] == ["allow", "allow", "deny", "allow", "allow",
                                                "deny"]
    first = records[0]
    assert first["revision"] == holder.current.authorizer.revision
    assert first["request"]["context"]["token"] == MASKED
    assert first["request"]["resource"]["properties"]["amount"] == MASKED
    assert first["request"]["resource"]["properties"]["customer_id"] == "cust-100"
    assert [layer["layer"] for layer in first["layers"]] == ["identity", "roles", "ownership",
                                                             "transaction"]
    assert records[2]["rule"] == "transaction.too_large" and records[2]["eval_us"] >= 0
    assert records[5]["errors"][0]["code"] == "invalid_request"
    assert verify([path]) == (6, None)


def test_a_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = DecisionLog(tmp_path / "d.log", buffer=2, start=False, on_drop=dropped.append)
    for n in range(5):
        log.record(DECISION, {}, None, f"d-{n}", 0)
    assert log.dropped == 3 and sum(dropped) == 3
    log.start()
    log.close()
    assert [r["id"] for r in read([tmp_path / "d.log"])] == ["d-0", "d-1"]


def test_the_chain_catches_deletion_reordering_and_editing(tmp_path: Path) -> None:
    path = tmp_path / "d.log"
    _write(path, 5)
    assert verify([path]) == (5, None)
    lines = path.read_bytes().splitlines(keepends=True)

    def broken(content: list[bytes]) -> str:
        path.write_bytes(b"".join(content))
        _, problem = verify([path])
        assert problem is not None
        return problem

    assert "deleted or reordered" in broken(lines[:2] + lines[3:])
    assert "deleted or reordered" in broken([lines[0], lines[2], lines[1], *lines[3:]])
    edited = orjson.loads(lines[3])
    edited["decision"] = "deny"
    assert "edited" in broken([*lines[:3], orjson.dumps(edited) + b"\n", *lines[4:]])
    path.write_bytes(b"".join(lines))
    assert verify([path]) == (5, None)


def test_rotation_and_restart_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "d.log"
    _write(path, 6, max_bytes=1200, keep=10)
    _write(path, 3, max_bytes=1200, keep=10)  # a restart continues the chain
    rotated = sorted(tmp_path.glob("d.log.*"), key=lambda p: -int(p.suffix[1:]))
    assert rotated, "the log did not rotate"
    files = [*rotated, path]
    assert verify(files) == (9, None)
    cli = [sys.executable, "-m", "layergate.engine.cli", "audit", "verify"]
    ok = subprocess.run([*cli, *map(str, files)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "9 record(s)" in ok.stdout
    gap = subprocess.run([*cli, *map(str, files[:1] + files[2:])], capture_output=True,
                         text=True, timeout=60)
    assert gap.returncode == 1 and "chain broken" in gap.stderr


def test_integers_beyond_64_bits_reach_the_evaluator_exact_and_the_log_as_digits(
        tmp_path: Path) -> None:
    """orjson would read such an integer as a double (a number the policy could compare); the
    server reads it exactly, so the evaluator fails closed, and the log keeps its digits."""
    path = tmp_path / "decisions.log"
    holder = PolicyHolder(PolicySource((INVOICE / "policy.lg",), INVOICE / "data.json"))
    server = Server(holder, ServerOptions(port=0, watch_seconds=0, decision_log=path)).start()
    huge = 2**64 + 1
    properties = b'{"customer_id": "cust-100", "currency": "EUR", "amount": %d}' % huge
    try:
        with Client(f"127.0.0.1:{server.port}") as client:
            answer = client.stub.Check(pb.CheckRequest(
                subject=pb.Subject(type="service_account", id="billing-eu"),
                action=pb.Action(name="submit"),
                resource=pb.Resource(type="invoice", id="inv-1", properties_json=properties),
                context_json=b'{"trace": %d}' % -huge))
            after = client.check(_request(10))
    finally:
        server.stop(grace=1)
    assert answer.decision == pb.DECISION_DENY and answer.rule == "transaction.too_large"
    assert [e.code for e in answer.errors] == ["type_error"]
    assert after["decision"]
    first, second = read([path])
    assert first["request"]["resource"]["properties"]["amount"] == str(huge)
    assert first["request"]["context"]["trace"] == str(-huge)
    assert second["decision"] == "allow"
    assert verify([path]) == (2, None)


def test_a_request_the_log_cannot_write_is_recorded_without_it(tmp_path: Path) -> None:
    """An in-process caller's request with a non-str key or a cycle: the record is written
    (decision, id, why its request is missing), and the writer goes on with the next."""
    path = tmp_path / "decisions.log"
    cyclic: dict = {"type": "s", "id": "loop"}
    cyclic["self"] = cyclic
    log = DecisionLog(path)
    log.record(DECISION, {"subject": {"type": "s", "id": "s0"}}, None, "d-0", 1e-6)
    log.record(DECISION, {"subject": {("not", "a str"): 1}}, None, "d-1", 1e-6)
    log.record(DECISION, {"subject": cyclic}, None, "d-2", 1e-6)
    log.record(DECISION, {"subject": {"type": "s", "id": "s3"}}, None, "d-3", 1e-6)
    log.close()
    records = read([path])
    assert [r["id"] for r in records] == ["d-0", "d-1", "d-2", "d-3"]
    assert records[3]["request"] == {"subject": {"type": "s", "id": "s3"}}
    for record in records[1:3]:
        assert record["request"] is None and record["decision"] == "allow"
        assert record["request_error"].startswith("the request cannot be written as JSON")
    assert "request_error" not in records[0]
    assert verify([path]) == (4, None)


def test_a_failed_write_drops_one_record_and_the_chain_goes_on(tmp_path: Path) -> None:
    """A write that fails (a full disk) loses that record only: it is counted as dropped, the
    writer thread lives on, and the records after it chain to the one before it."""
    path = tmp_path / "decisions.log"
    dropped: list[int] = []
    log = DecisionLog(path, on_drop=dropped.append, start=False)

    class FullOnce:
        """The log's file, whose second write fails as on a full disk."""

        def __init__(self, file: object) -> None:
            self.file, self.writes = file, 0

        def write(self, line: bytes) -> int:
            self.writes += 1
            if self.writes == 2:
                raise OSError(28, "No space left on device")
            return self.file.write(line)

        def __getattr__(self, name: str) -> object:
            return getattr(self.file, name)

    log._file = FullOnce(log._file)  # type: ignore[assignment]
    for n in range(4):
        log.record(DECISION, {"subject": {"type": "s", "id": f"s{n}"}}, None, f"d-{n}", 1e-6)
    log.start()
    log.close()
    assert [r["id"] for r in read([path])] == ["d-0", "d-2", "d-3"]
    assert log.dropped == 1 and dropped == [1]
    assert verify([path]) == (3, None)
