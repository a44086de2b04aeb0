"""End-to-end tests of the gRPC server on loopback (port 0), with the typed client."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from layergate.clients import AsyncClient, Client
from layergate.clients._gen import authz_pb2 as pb
from layergate.clients.convert import check_request as convert_check
from layergate.engine.server import PolicyHolder, PolicySource, Server, ServerOptions

from .conftest import ANCHORS, EXAMPLES
from .serving import serve

INVOICE = EXAMPLES / "invoice"


def _request(subject: str = "billing-eu", action: str = "submit", amount: float = 100,
             customer: str = "cust-100") -> dict:
    return {"subject": {"type": "service_account", "id": subject}, "action": {"name": action},
            "resource": {"type": "invoice", "id": "inv-1",
                         "properties": {"customer_id": customer, "amount": amount,
                                        "currency": "EUR"}}}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    shutil.copy(INVOICE / "policy.lg", tmp_path / "policy.lg")
    shutil.copy(INVOICE / "data.json", tmp_path / "data.json")
    return tmp_path


def _start(policy: Path, data: Path | None, watch: float = 0.0) -> Server:
    holder = PolicyHolder(PolicySource((policy,), data))
    options = ServerOptions(port=0, watch_seconds=watch, grace_seconds=5, admin_insecure=True)
    return Server(holder, options).start()


@pytest.fixture
def server(policy_dir: Path) -> Iterator[Server]:
    running = _start(policy_dir / "policy.lg", policy_dir / "data.json")
    yield running
    running.stop(grace=1)


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(f"127.0.0.1:{server.port}") as connected:
        yield connected


def test_check_allow_and_deny_with_reasons(client: Client) -> None:
    allowed = client.check(_request())
    assert allowed["decision"] == "allow"
    assert allowed["reasons"] == ["identity.active_account", "roles.bound_role",
                                  "ownership.own_customer", "transaction.within_limits"]
    denied = client.check(_request(amount=75_000))
    assert (denied["decision"], denied["layer"], denied["rule"]) == (
        "deny", "transaction", "transaction.too_large")
    assert allowed["revision"] == denied["revision"] != ""
    assert allowed["decision_id"] != denied["decision_id"]
    assert allowed["decision_id"].split("-")[0] == denied["decision_id"].split("-")[0]


def test_explain_reports_every_layer(client: Client) -> None:
    decision = client.check(_request(customer="cust-999"), explain=True)
    assert [(r["layer"], r["outcome"]) for r in decision["layers"]] == [
        ("identity", "allow"), ("roles", "allow"), ("ownership", "no_match"),
        ("transaction", "allow")]


def test_fail_closed_errors_travel_with_their_path(client: Client) -> None:
    decision = client.check(_request(amount="lots"))  # type: ignore[arg-type]
    assert decision["decision"] == "deny"
    assert decision["errors"][0]["code"] == "type_error"
    compared = "resource.properties.amount > data.accounts[subject.id].max_amount"
    assert decision["errors"][0]["path"] == compared


def test_malformed_requests_are_invalid_argument(client: Client, server: Server) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.check({"subject": {"type": "service_account"}, "action": {"name": "submit"},
                      "resource": {"type": "invoice", "id": "i"}})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "subject.id: is required"
    assert ("layergate-field", "subject.id") in info.value.trailing_metadata()
    stub = client.stub
    bad_json = pb.CheckRequest(subject=pb.Subject(type="s", id="s", properties_json=b"{nope"),
                               action=pb.Action(name="a"), resource=pb.Resource(type="r", id="r"))
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(bad_json)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("subject.properties_json: is not valid JSON")


def test_bytes_that_are_no_message_are_invalid_argument(server: Server) -> None:
    """Each RPC, sent bytes protobuf cannot parse (a length past the end), fails
    INVALID_ARGUMENT naming the message; the stream first answers the good message before."""
    truncated = b"\x0a\x05ab"
    good = pb.StreamCheckRequest(items=[pb.StreamItem(
        correlation_id="c1", request=pb.CheckRequest(**{
            "subject": pb.Subject(type="service_account", id="billing-eu"),
            "action": pb.Action(name="submit"), "resource": pb.Resource(type="invoice", id="i"),
        }))]).SerializeToString()
    path = "/layergate.v1.Authorizer/"
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for method, message in (("Check", "CheckRequest"), ("BatchCheck", "BatchCheckRequest")):
            call = channel.unary_unary(path + method)  # bytes in, bytes out
            with pytest.raises(grpc.RpcError) as info:
                call(truncated, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details().startswith(f"not a valid {message}: ")
        stream = channel.stream_stream(path + "StreamCheck")
        answers = stream(iter([good, truncated]), timeout=10)
        first = pb.StreamCheckResponse.FromString(next(answers))
        assert [r.correlation_id for r in first.results] == ["c1"]
        with pytest.raises(grpc.RpcError) as info:
            next(answers)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith("not a valid StreamCheckRequest: ")


def test_batch_semantics_and_invalid_items(client: Client) -> None:
    defaults = {"subject": {"type": "service_account", "id": "billing-eu"},
                "action": {"name": "submit"}}
    items = [{"resource": _request(amount=a)["resource"]} for a in (10, 75_000, 20)]
    assert [d["decision"] for d in client.check_batch(items, defaults)] == [
        "allow", "deny", "allow"]
    assert [d["decision"] for d in client.check_batch(items, defaults,
                                                      "deny_on_first_deny")] == ["allow", "deny"]
    assert [d["decision"] for d in client.check_batch(items[1:], defaults,
                                                      "permit_on_first_permit")] == [
        "deny", "allow"]
    message = pb.BatchCheckRequest(subject=pb.Subject(type="service_account", id="billing-eu"),
                                   action=pb.Action(name="read"))
    message.items.add(resource=pb.Resource(type="invoice", id="a",
                                           properties_json=b'{"customer_id": "cust-100"}'))
    message.items.add(resource=pb.Resource(type="invoice", id="b", properties_json=b"[1]"))
    message.items.add(resource=pb.Resource(type="invoice"))
    results = client.stub.BatchCheck(message).results
    assert [r.decision for r in results] == [pb.DECISION_ALLOW, pb.DECISION_DENY,
                                             pb.DECISION_DENY]
    assert results[1].errors[0].path == "items[1].resource.properties_json"
    assert results[2].errors[0].path == "resource.id"


def test_stream_echoes_correlation_ids(client: Client) -> None:
    requests = [_request(amount=a) for a in (1, 60_000, 2, 3, 70_000)]
    results = list(client.stream(requests, batch=2))
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["decision"] for r in results] == ["allow", "deny", "allow", "allow", "deny"]
    bad = list(client.stream([{"subject": {"type": "x"}}]))
    assert bad[0]["decision"] == "deny" and bad[0]["invalid_field"] == "subject.id"


def test_stream_messages_decided_together_answer_as_one_by_one(client: Client) -> None:
    """A message whose items agree on `explain` is decided in one batch; one that mixes them
    item by item. Both give each item its own decision, and name the unreadable fields."""
    good = [_request(amount=a) for a in (1, 60_000)]
    shape = {"subject": {"type": "service_account"}, "action": {"name": "submit"},
             "resource": {"type": "invoice", "id": "i"}}
    items = [convert_check(good[0]), convert_check(shape), convert_check(good[1])]
    items.append(pb.CheckRequest(subject=pb.Subject(type="service_account", id="billing-eu"),
                                 context_json=b"[1]"))

    def answers(explains: list[bool]) -> list[tuple]:
        message = pb.StreamCheckRequest()
        for index, (item, explain) in enumerate(zip(items, explains, strict=True)):
            added = message.items.add(correlation_id=f"c{index}")
            added.request.CopyFrom(item)
            added.request.explain = explain
        (response,) = list(client.stub.StreamCheck(iter([message])))
        return [(r.correlation_id, r.response.decision, r.response.layer, r.response.rule,
                 [(e.code, e.path) for e in r.response.errors], r.invalid_field)
                for r in response.results]

    together = answers([False] * 4)
    assert together == answers([False, True, False, True])  # one by one
    assert [(r[0], r[1], r[5]) for r in together] == [
        ("c0", pb.DECISION_ALLOW, ""), ("c1", pb.DECISION_DENY, "subject.id"),
        ("c2", pb.DECISION_DENY, ""), ("c3", pb.DECISION_DENY, "context_json")]
    assert together[1][4] == [("invalid_request", "subject.id")]
    assert together[2][2:4] == ("transaction", "transaction.too_large")


def test_health_and_reflection(server: Server) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "layergate.v1.Authorizer"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request])))
        names = {s.name for s in response.list_services_response.service}
        assert {"layergate.v1.Authorizer", "layergate.v1.Admin", "grpc.health.v1.Health"} <= names


def test_health_is_not_serving_before_start(policy_dir: Path) -> None:
    holder = PolicyHolder(PolicySource((policy_dir / "policy.lg",), policy_dir / "data.json"))
    server = Server(holder, ServerOptions(port=0, watch_seconds=0))
    try:
        status = server.health.Check(health_pb2.HealthCheckRequest(service=""), None).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop(grace=0)


def test_deadlines_are_honoured(client: Client) -> None:
    def slow() -> Iterator[dict]:
        for _ in range(40):
            time.sleep(0.05)
            yield _request()

    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        list(client.stream(slow(), batch=1, timeout=0.3))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.5  # cut at the deadline, not after all 40 items


def test_admin_info_validate_and_reload(client: Client, server: Server, policy_dir: Path) -> None:
    info = client.admin.PolicyInfo(pb.PolicyInfoRequest())
    assert list(info.layers) == ["identity", "roles", "ownership", "transaction"]
    assert info.rules == 7 and info.revision.startswith("sha256:")
    candidate = pb.ValidatePolicyRequest(files={"p.lg": "layer a { allow * on * when x = 1 }"})
    result = client.admin.ValidatePolicy(candidate)
    assert not result.ok
    assert (result.diagnostics[0].code, result.diagnostics[0].line) == ("single_equals", 1)
    good = client.admin.ValidatePolicy(
        pb.ValidatePolicyRequest(files={"p.lg": "layer a { allow * on * }"}))
    assert good.ok and good.revision.startswith("sha256:")
    assert client.admin.PolicyInfo(pb.PolicyInfoRequest()).revision == info.revision

    data = json.loads((policy_dir / "data.json").read_text())
    data["accounts"]["billing-eu"]["max_amount"] = 100_000
    (policy_dir / "data.json").write_text(json.dumps(data))
    reloaded = client.admin.ReloadPolicy(pb.ReloadPolicyRequest())
    assert reloaded.reloaded and reloaded.revision != info.revision
    assert client.check(_request(amount=75_000))["decision"] == "allow"

    (policy_dir / "policy.lg").write_text("layer broken {\n  allow * on * when x = 1\n}\n")
    rejected = client.admin.ReloadPolicy(pb.ReloadPolicyRequest())
    assert not rejected.reloaded and rejected.revision == reloaded.revision
    assert rejected.diagnostics[0].code == "single_equals"
    assert rejected.diagnostics[0].file.endswith("policy.lg")
    assert (rejected.diagnostics[0].line, rejected.diagnostics[0].column) == (2, 23)
    assert client.check(_request(amount=75_000))["revision"] == reloaded.revision


def test_serving_processes_keep_the_policy_out_of_the_collectors_way(policy_dir: Path) -> None:
    """The serving path freezes what is loaded (full collections would walk it again and
    again) and collects young objects less often; a replaced policy is still freed."""
    import gc
    import weakref

    from layergate.engine.server import YOUNG_COLLECTION_EVERY

    thresholds = gc.get_threshold()
    try:
        holder = PolicyHolder(PolicySource((policy_dir / "policy.lg",), policy_dir / "data.json"),
                              freeze_heap=True)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY
        replaced = weakref.ref(holder.current.authorizer.tables)
        data = json.loads((policy_dir / "data.json").read_text())
        (policy_dir / "data.json").write_text(json.dumps({**data, "unused": {}}))
        gc.unfreeze()
        assert holder.reload()[0]
        assert replaced() is None  # not kept alive by the freeze
        assert holder.current.authorizer.check(_request()).allowed
        assert gc.get_freeze_count() > 0  # frozen again after the reload
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_a_fault_while_reloading_keeps_the_old_policy(policy_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only policy errors: any exception while loading is a rejected reload (the file
    watcher, which calls reload, must survive it)."""
    holder = PolicyHolder(PolicySource((policy_dir / "policy.lg",), policy_dir / "data.json"))
    serving = holder.current

    def broken(self: PolicySource) -> None:
        raise RuntimeError("a bug in loading")

    monkeypatch.setattr(PolicySource, "load", broken)
    reloaded, problems = holder.reload()
    assert not reloaded and holder.current is serving
    assert [p.code for p in problems] == ["load_failed"]
    assert "a bug in loading" in problems[0].message


def test_file_changes_reload_by_themselves(policy_dir: Path) -> None:
    server = _start(policy_dir / "policy.lg", policy_dir / "data.json", watch=0.1)
    try:
        with Client(f"127.0.0.1:{server.port}") as client:
            before = client.check(_request())["revision"]
            text = (policy_dir / "policy.lg").read_text() + "\n# touched\n"
            (policy_dir / "policy.lg").write_text(text)
            deadline = time.monotonic() + 10
            while client.check(_request())["revision"] == before:
                assert time.monotonic() < deadline, "the change was not picked up"
                time.sleep(0.05)
    finally:
        server.stop(grace=1)


def test_a_stream_keeps_working_across_reloads(client: Client, server: Server,
                                               policy_dir: Path) -> None:
    revisions: set[str] = set()

    def requests() -> Iterator[dict]:
        for n in range(60):
            if n == 30:
                (policy_dir / "policy.lg").write_text(
                    (policy_dir / "policy.lg").read_text() + "\n# reloaded mid-stream\n")
                assert server.holder.reload()[0]
            yield _request()
            time.sleep(0.005)

    results = list(client.stream(requests(), batch=5))
    revisions = {r["revision"] for r in results}
    assert len(results) == 60 and all(r["decision"] == "allow" for r in results)
    assert len(revisions) == 2


def test_sustained_load_while_reloading(client: Client, server: Server, policy_dir: Path) -> None:
    """Several client threads for a few seconds; the policy reloads every 100 ms."""
    seen: set[str] = {server.holder.current.authorizer.revision}
    failures: list[str] = []
    answers: set[str] = set()
    stop = time.monotonic() + 4

    def load() -> None:
        with Client(f"127.0.0.1:{server.port}") as own:
            while time.monotonic() < stop:
                try:
                    answers.add(own.check(_request())["revision"])
                    for d in own.check_batch([_request()] * 20):
                        answers.add(d["revision"])
                except grpc.RpcError as error:
                    failures.append(error.code().name)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    text = (policy_dir / "policy.lg").read_text()
    count = 0
    while time.monotonic() < stop:
        count += 1
        (policy_dir / "policy.lg").write_text(f"{text}\n# edit {count}\n")
        assert server.holder.reload()[0]
        seen.add(server.holder.current.authorizer.revision)
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert failures == []
    assert answers and answers <= seen
    assert count >= 10


def test_async_client(server: Server) -> None:
    async def run() -> tuple[dict, list[dict], list[dict]]:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            one = await client.check(_request())
            many = await client.check_batch([_request(), _request(amount=90_000)])
            streamed = [r async for r in client.stream([_request()] * 3, batch=2)]
            return one, many, streamed

    one, many, streamed = asyncio.run(run())
    assert one["decision"] == "allow"
    assert [d["decision"] for d in many] == ["allow", "deny"]
    assert [r["index"] for r in streamed] == [0, 1, 2]


def test_authzen_todo_vectors_through_the_server() -> None:
    example = EXAMPLES / "authzen-todo"
    server = _start(example / "policy.lg", example / "data.json")
    try:
        with Client(f"127.0.0.1:{server.port}") as client:
            vectors = json.loads((ANCHORS / "authzen" / "todo" /
                                  "decisions-authorization-api-1_0-02.json").read_text())
            for case in vectors["evaluation"]:
                got = client.check(case["request"])["decision"] == "allow"
                assert got == case["expected"], case["request"]
            for batch in vectors["evaluations"]:
                request = dict(batch["request"])
                items = request.pop("evaluations")
                got = [{"decision": d["decision"] == "allow"}
                       for d in client.check_batch(items, request)]
                assert got == batch["expected"]
    finally:
        server.stop(grace=1)


def test_a_port_in_use_is_an_error(server: Server, policy_dir: Path) -> None:
    holder = PolicyHolder(PolicySource((policy_dir / "policy.lg",), policy_dir / "data.json"))
    with pytest.raises(OSError, match="in use"):
        Server(holder, ServerOptions(port=server.port, watch_seconds=0))


def test_serve_command_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    with serve(str(INVOICE / "policy.lg"), "--data", str(INVOICE / "data.json"),
               "--port", "0", "--watch", "0", "--workers", "1", "--no-grants") as served:
        with Client(f"127.0.0.1:{served.port}") as client:
            assert client.check(_request())["decision"] == "allow"
        served.process.terminate()
        assert served.process.wait(timeout=20) == 0


def test_a_server_that_does_not_announce_itself_fails_the_test_in_time() -> None:
    """The helper's deadline: a silent server fails the test (and is killed) instead of
    hanging it; one that exits with an error fails it with its stderr."""
    started = time.monotonic()
    silent = serve(str(INVOICE / "policy.lg"), "--data", str(INVOICE / "data.json"),
                   "--port", "0", "--no-grants", startup_seconds=0.01)
    with pytest.raises(pytest.fail.Exception, match="said nothing within 0 s"), silent:
        raise AssertionError("unreachable: the server cannot be up yet")
    assert time.monotonic() - started < 60
    failing = serve("missing.lg", "--port", "0", "--no-grants")
    with pytest.raises(pytest.fail.Exception, match="no such file"), failing:
        raise AssertionError("unreachable: there is no policy")


def test_two_workers_serve_one_port() -> None:
    with serve(str(INVOICE / "policy.lg"), "--data", str(INVOICE / "data.json"),
               "--port", "0", "--workers", "2", "--watch", "0",
               "--admin-insecure-loopback", "--no-grants") as served:
        process, port = served.process, served.port
        pids = set()
        for _ in range(60):  # the kernel spreads connections, so open fresh ones
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
                info = pb_admin(channel).PolicyInfo(pb.PolicyInfoRequest(), timeout=10)
                pids.add(info.pid)
            if len(pids) == 2:
                break
        assert len(pids) == 2
        assert process.pid not in pids  # the parent only supervises
        clash = subprocess.run(
            [sys.executable, "-m", "layergate.engine.cli", "serve", str(INVOICE / "policy.lg"),
             "--data", str(INVOICE / "data.json"), "--port", str(port), "--workers", "2",
             "--no-grants"],
            capture_output=True, text=True, timeout=60)
        assert clash.returncode != 0 and "in use" in clash.stderr
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_a_worker_that_fails_to_start_stops_the_server(tmp_path: Path) -> None:
    """A worker dying before it serves fails the start at once, and no worker is left."""
    (tmp_path / "not-a-dir").write_text("")
    started = subprocess.run(
        [sys.executable, "-m", "layergate.engine.cli", "serve", str(INVOICE / "policy.lg"),
         "--data", str(INVOICE / "data.json"), "--port", "0", "--workers", "2", "--watch", "0",
         "--grants-db", str(tmp_path / "not-a-dir" / "g.sqlite")],  # each worker opens it
        capture_output=True, text=True, timeout=90)
    assert started.returncode == 1
    assert "before it was serving" in started.stderr
    assert "layergate: serving" not in started.stdout


def test_processes_opening_a_new_grant_store_at_once_all_succeed(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "grants.sqlite"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    opened = context.Queue()
    processes = [context.Process(target=_open_store, args=(path, barrier, opened))
                 for _ in range(6)]
    for process in processes:
        process.start()
    results = [opened.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    assert results == ["ok"] * 6


def _open_store(path: Path, barrier, opened) -> None:
    from layergate.engine.grants import GrantStore

    barrier.wait()
    try:
        GrantStore(path).close()
        opened.put("ok")
    except Exception as exc:  # reported to the test, which names it
        opened.put(repr(exc))


def pb_admin(channel: grpc.Channel):
    from layergate.clients._gen import authz_pb2_grpc

    return authz_pb2_grpc.AdminStub(channel)


def test_sighup_reloads_and_metrics_count(tmp_path: Path) -> None:
    shutil.copy(INVOICE / "policy.lg", tmp_path / "policy.lg")
    shutil.copy(INVOICE / "data.json", tmp_path / "data.json")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    with serve(str(tmp_path / "policy.lg"), "--data", str(tmp_path / "data.json"),
               "--port", "0", "--workers", "1", "--watch", "0",
               "--metrics-port", str(metrics_port),
               "--no-grants") as served:
        process, port = served.process, served.port
        with Client(f"127.0.0.1:{port}") as client:
            before = client.check(_request())["revision"]
            client.check(_request(amount=99_999))
            (tmp_path / "policy.lg").write_text((tmp_path / "policy.lg").read_text() + "#\n")
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while client.check(_request())["revision"] == before:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        from urllib.request import urlopen

        text = urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert 'layergate_decisions_total{decision="deny",layer="transaction"} 1.0' in text
        assert 'layergate_reloads_total{outcome="ok"} 1.0' in text
        assert "layergate_rpc_duration_seconds_bucket" in text
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_internal_faults_never_allow(server: Server, client: Client,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    authorizer = server.holder.current.authorizer

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(authorizer, "check", broken)
    with pytest.raises(grpc.RpcError) as info:
        client.check(_request())
    assert info.value.code() == grpc.StatusCode.INTERNAL


def test_an_oversized_batch_is_a_clear_error(policy_dir: Path) -> None:
    holder = PolicyHolder(PolicySource((policy_dir / "policy.lg",), policy_dir / "data.json"))
    small = Server(holder, ServerOptions(port=0, watch_seconds=0,
                                         max_message_bytes=64 * 1024)).start()
    try:
        with Client(f"127.0.0.1:{small.port}") as client:
            with pytest.raises(grpc.RpcError) as info:
                client.check_batch([_request()] * 2_000)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert len(client.check_batch([_request()] * 50)) == 50
    finally:
        small.stop(grace=1)


def test_graceful_stop_finishes_calls_in_flight(policy_dir: Path) -> None:
    server = _start(policy_dir / "policy.lg", policy_dir / "data.json")
    client = Client(f"127.0.0.1:{server.port}")

    def slow() -> Iterator[dict]:
        for _ in range(20):
            time.sleep(0.05)
            yield _request()

    stopper = threading.Timer(0.2, lambda: server.stop(grace=10))
    stopper.start()
    try:
        results = list(client.stream(slow(), batch=1))
        assert len(results) == 20 and all(r["decision"] == "allow" for r in results)
        stopper.join()
        with pytest.raises(grpc.RpcError):
            client.check(_request(), timeout=2)
    finally:
        client.close()


def test_check_command_streams_a_file(server: Server, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join(json.dumps(_request(amount=a)) for a in (1, 80_000)) + "\n")
    cli = [sys.executable, "-m", "layergate.engine.cli", "check", "--target",
           f"127.0.0.1:{server.port}"]
    result = subprocess.run([*cli, "--requests", str(requests), "--progress"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["decision"] for d in decisions] == ["allow", "deny"]
    assert "check [" in result.stderr
    result = subprocess.run([*cli, "--request", '{"subject": {"type": "x"}}'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "INVALID_ARGUMENT: subject.id: is required" in result.stderr


def test_admin_is_off_without_mtls_unless_asked_for(policy_dir: Path) -> None:
    holder = PolicyHolder(PolicySource((policy_dir / "policy.lg",), policy_dir / "data.json"))
    server = Server(holder, ServerOptions(port=0, watch_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(grpc.RpcError) as info:
                client.admin.ReloadPolicy(pb.ReloadPolicyRequest())
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "mTLS" in info.value.details()
            assert client.check(_request())["decision"] == "allow"  # decisions still work
    finally:
        server.stop(grace=1)
    with pytest.raises(OSError, match="loopback"):
        Server(holder, ServerOptions(host="0.0.0.0", port=0, admin_insecure=True))


def test_the_server_serves_compiled_tables_and_keeps_them_over_a_corrupt_file(
        policy_dir: Path) -> None:
    """`serve --compiled`: the tables `layergate compile` wrote, served as the source files
    would be; a compiled file changed under it is refused and the loaded tables stay."""
    from layergate.engine import Authorizer

    authorizer = Authorizer.from_files(policy_dir / "policy.lg", policy_dir / "data.json")
    compiled = policy_dir / "policy.lgc"
    compiled.write_bytes(authorizer.tables.to_bytes())
    holder = PolicyHolder(PolicySource(compiled=compiled))
    options = ServerOptions(port=0, watch_seconds=0, grace_seconds=5, admin_insecure=True)
    server = Server(holder, options).start()
    try:
        with Client(f"127.0.0.1:{server.port}") as client:
            allowed = client.check(_request())
            assert allowed["decision"] == "allow"
            assert allowed["revision"] == authorizer.revision
            assert client.check(_request(amount=10**9))["decision"] == "deny"
            serving = holder.current
            compiled.write_bytes(compiled.read_bytes()[:-10])  # cut short
            reloaded, problems = holder.reload()
            assert not reloaded and holder.current is serving and problems
            assert client.check(_request())["revision"] == authorizer.revision
    finally:
        server.stop(grace=1)
