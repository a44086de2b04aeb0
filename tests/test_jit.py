"""JIT elevation end to end over mTLS: request, approve, use, expire, revoke, persist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from layergate.clients import Client, credentials
from layergate.clients._gen import authz_pb2 as pb
from layergate.engine.grants import GrantError, GrantStore
from layergate.engine.server import PolicyHolder, PolicySource, Server, ServerOptions

from .certs import Authority
from .conftest import EXAMPLES
from .serving import serve

JIT = EXAMPLES / "jit-grants"
OPS = "spiffe://example.org/ns/ops/sa/"


class Clock:
    """An injectable clock: tests move time forward by hand."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority.create("jit-test-ca")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _server(authority: Authority, db: Path, clock: Clock) -> Server:
    leaf = authority.issue("localhost", dns=("localhost",), ips=("127.0.0.1",))
    holder = PolicyHolder(PolicySource((JIT / "policy.lg",), JIT / "data.json", clock=clock))
    options = ServerOptions(port=0, watch_seconds=0, tls_cert=leaf.cert, tls_key=leaf.key,
                            client_ca=authority.pem, grants_path=db, clock=clock,
                            max_elevation_seconds=7200)
    return Server(holder, options).start()


@pytest.fixture
def server(authority: Authority, tmp_path: Path, clock: Clock) -> Iterator[Server]:
    running = _server(authority, tmp_path / "grants.sqlite", clock)
    yield running
    running.stop(grace=1)


def _as(server: Server, authority: Authority, name: str) -> Client:
    issued = authority.issue(name, uris=(OPS + name,))
    return Client(f"127.0.0.1:{server.port}", timeout=5,
                  channel_credentials=credentials(authority.pem, issued.key, issued.cert))


def _migrate(resource: str = "orders-db", session: str = "sess-42") -> dict:
    return {"subject": {"type": "automation_agent", "id": "db-maintainer"},
            "action": {"name": "migrate"}, "resource": {"type": "database", "id": resource},
            "context": {"source_ip": "10.40.1.9", "session_id": session}}


def _ask(client: Client, **fields: object) -> pb.Elevation:
    values: dict[str, object] = {
        "subject": "db-maintainer", "roles": ["db_admin"], "resources": ["orders-*"],
        "duration_seconds": 600, "reason": "schema migration CHG-1", "session_id": "sess-42"}
    return client.admin.RequestElevation(pb.RequestElevationRequest(**{**values, **fields}))


def _approve(client: Client, grant_id: str, approve: bool = True) -> pb.Elevation:
    return client.admin.DecideElevation(pb.DecideElevationRequest(id=grant_id, approve=approve))


def test_the_jit_workflow_end_to_end(server: Server, authority: Authority,
                                     clock: Clock) -> None:
    with _as(server, authority, "change-bot") as bot, _as(server, authority, "alice") as alice:
        assert bot.check(_migrate())["decision"] == "deny"  # no standing right
        grant = _ask(bot)
        assert (grant.status, grant.requested_by) == ("pending", OPS + "change-bot")
        assert bot.check(_migrate())["decision"] == "deny"  # pending is inert
        approved = _approve(alice, grant.id)
        assert approved.status == "approved" and approved.decided_by == OPS + "alice"
        assert approved.expires_at == pytest.approx(clock.now + 600)

        allowed = bot.check(_migrate())
        assert allowed["decision"] == "allow"
        assert f"grant:{grant.id}" in allowed["reasons"]
        batch = bot.check_batch([_migrate(), _migrate(resource="billing-db")])
        assert [d["decision"] for d in batch] == ["allow", "deny"]
        assert f"grant:{grant.id}" in batch[0]["reasons"]
        streamed = list(bot.stream([_migrate(session="sess-99"), _migrate()]))
        assert [d["decision"] for d in streamed] == ["deny", "allow"]  # session-scoped

        clock.now += 601  # expired grants are inert at once
        assert bot.check(_migrate())["decision"] == "deny"


def test_revoked_grants_are_inert_immediately(server: Server, authority: Authority) -> None:
    with _as(server, authority, "change-bot") as bot, _as(server, authority, "bob") as bob:
        grant = _ask(bot)
        _approve(bob, grant.id)
        assert bot.check(_migrate())["decision"] == "allow"
        assert bob.admin.RevokeElevation(pb.RevokeElevationRequest(id=grant.id)).status == (
            "revoked")
        assert bot.check(_migrate())["decision"] == "deny"
        listed = bob.admin.ListElevations(pb.ListElevationsRequest(subject="db-maintainer"))
        assert [(e.id, e.status) for e in listed.elevations] == [(grant.id, "revoked")]


def test_self_approval_and_unauthorized_approvers_are_refused(server: Server,
                                                              authority: Authority) -> None:
    with _as(server, authority, "alice") as alice, _as(server, authority, "mallory") as mallory:
        own = _ask(alice)
        with pytest.raises(grpc.RpcError) as info:
            _approve(alice, own.id)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "neither the requester nor the subject" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            _approve(mallory, own.id)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            _ask(mallory)  # not a requester either
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_subject_cannot_approve_its_own_elevation(server: Server,
                                                      authority: Authority) -> None:
    with _as(server, authority, "change-bot") as bot, _as(server, authority, "bob") as bob:
        grant = _ask(bot, subject=OPS + "bob")
        with pytest.raises(grpc.RpcError) as info:
            _approve(bob, grant.id)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_durations_are_capped_by_the_policy_and_the_server(server: Server,
                                                           authority: Authority) -> None:
    with _as(server, authority, "change-bot") as bot:
        with pytest.raises(grpc.RpcError) as info:
            _ask(bot, duration_seconds=5000)  # the policy allows at most 3600
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            _ask(bot, duration_seconds=9000)  # the server caps at 7200
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_grants_survive_a_restart_and_are_shared_by_workers(authority: Authority,
                                                            tmp_path: Path,
                                                            clock: Clock) -> None:
    db = tmp_path / "grants.sqlite"
    first, second = _server(authority, db, clock), _server(authority, db, clock)
    try:
        with _as(first, authority, "change-bot") as bot, _as(first, authority, "alice") as alice:
            _approve(alice, _ask(bot).id)
        with _as(second, authority, "change-bot") as other:  # another worker, same file
            assert other.check(_migrate())["decision"] == "allow"
    finally:
        first.stop(grace=1)
        second.stop(grace=1)
    restarted = _server(authority, db, clock)
    try:
        with _as(restarted, authority, "change-bot") as bot:
            assert bot.check(_migrate())["decision"] == "allow"
    finally:
        restarted.stop(grace=1)


def test_elevations_need_an_mtls_identity(tmp_path: Path) -> None:
    holder = PolicyHolder(PolicySource((JIT / "policy.lg",), JIT / "data.json"))
    server = Server(holder, ServerOptions(port=0, watch_seconds=0, admin_insecure=True,
                                          grants_path=tmp_path / "g.sqlite")).start()
    try:
        with Client(f"127.0.0.1:{server.port}") as client, pytest.raises(grpc.RpcError) as info:
            _ask(client)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        server.stop(grace=1)


def test_store_rules(tmp_path: Path) -> None:
    clock = Clock()
    store = GrantStore(tmp_path / "g.sqlite", clock)
    with pytest.raises(GrantError, match="resource scope"):
        store.request("s", "r", ["x"], [], [], 60, "why")
    grant = store.request("s", "r", ["x"], [], ["db-*"], 60, "why")
    with pytest.raises(GrantError, match="neither"):
        store.decide(grant.id, "s", True)
    store.decide(grant.id, "a", False)
    with pytest.raises(GrantError, match="rejected, not pending"):
        store.decide(grant.id, "a", True)
    request = {"subject": {"id": "s"}, "resource": {"id": "db-1"}}
    assert store.elevation_for(request) == {"active": False}
    store.close()


def test_the_elevation_command(server: Server, authority: Authority, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    def files(name: str) -> list[str]:
        issued = authority.issue(name, uris=(OPS + name,))
        (tmp_path / f"{name}.key").write_bytes(issued.key)
        (tmp_path / f"{name}.pem").write_bytes(issued.cert)
        (tmp_path / "ca.pem").write_bytes(authority.pem)
        return ["--target", f"127.0.0.1:{server.port}", "--ca", str(tmp_path / "ca.pem"),
                "--cert", str(tmp_path / f"{name}.pem"), "--key", str(tmp_path / f"{name}.key")]

    cli = [sys.executable, "-m", "layergate.engine.cli", "elevation"]
    asked = subprocess.run([*cli, *files("change-bot"), "request", "--subject", "db-maintainer",
                            "--role", "db_admin", "--resource", "orders-db", "--duration", "60",
                            "--reason", "CHG-2"], capture_output=True, text=True, timeout=60)
    assert asked.returncode == 0, asked.stderr
    grant = json.loads(asked.stdout)
    approved = subprocess.run([*cli, *files("alice"), "approve", grant["id"]],
                              capture_output=True, text=True, timeout=60)
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "approved"
    refused = subprocess.run([*cli, *files("mallory"), "revoke", grant["id"]],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "PERMISSION_DENIED" in refused.stderr


def test_both_workers_of_a_server_see_a_grant(authority: Authority, tmp_path: Path) -> None:
    leaf = authority.issue("localhost", dns=("localhost",), ips=("127.0.0.1",))
    for name, blob in (("server.pem", leaf.cert), ("server.key", leaf.key),
                       ("ca.pem", authority.pem)):
        (tmp_path / name).write_bytes(blob)
    with serve(str(JIT / "policy.lg"), "--data", str(JIT / "data.json"), "--port", "0",
               "--workers", "2", "--watch", "0", "--tls-cert", str(tmp_path / "server.pem"),
               "--tls-key", str(tmp_path / "server.key"), "--client-ca", str(tmp_path / "ca.pem"),
               "--grants-db", str(tmp_path / "g.sqlite")) as served:
        process, port = served.process, served.port
        alice = authority.issue("alice", uris=(OPS + "alice",))
        bot = authority.issue("change-bot", uris=(OPS + "change-bot",))

        def connect(issued) -> Client:
            return Client(f"127.0.0.1:{port}", timeout=10,
                          channel_credentials=credentials(authority.pem, issued.key, issued.cert),
                          options=[("grpc.use_local_subchannel_pool", 1)])

        with connect(bot) as asking, connect(alice) as approving:
            _approve(approving, _ask(asking).id)
        answered: dict[int, str] = {}
        for _ in range(60):  # fresh connections until both workers have answered
            with connect(alice) as client:
                pid = client.admin.PolicyInfo(pb.PolicyInfoRequest()).pid
                answered[pid] = client.check(_migrate())["decision"]
            if len(answered) == 2:
                break
        assert len(answered) == 2 and set(answered.values()) == {"allow"}
        process.terminate()
        assert process.wait(timeout=30) == 0
