"""mTLS on loopback with real certificates: the caller's identity comes from its certificate."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from layergate.clients import Client, credentials
from layergate.engine.identity import caller_from_auth_context
from layergate.engine.server import PolicyHolder, PolicySource, Server, ServerOptions

from .certs import Authority, Issued
from .conftest import EXAMPLES

BINDING = EXAMPLES / "mtls-binding"
GATEWAY = "spiffe://example.org/ns/edge/sa/gateway"
INVOICER = "spiffe://example.org/ns/billing/sa/invoicer"


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority.create("layergate-test-ca")


@pytest.fixture(scope="module")
def server(authority: Authority) -> Iterator[Server]:
    leaf = authority.issue("localhost", dns=("localhost",), ips=("127.0.0.1",))
    holder = PolicyHolder(PolicySource((BINDING / "policy.lg",), BINDING / "data.json"))
    options = ServerOptions(port=0, watch_seconds=0, tls_cert=leaf.cert, tls_key=leaf.key,
                            client_ca=authority.pem)
    running = Server(holder, options).start()
    yield running
    running.stop(grace=1)


def _client(server: Server, authority: Authority, issued: Issued | None) -> Client:
    creds = credentials(authority.pem, issued.key if issued else None,
                        issued.cert if issued else None)
    return Client(f"127.0.0.1:{server.port}", timeout=5, channel_credentials=creds)


def _ask(subject: str) -> dict:
    return {"subject": {"type": "workload", "id": subject}, "action": {"name": "read"},
            "resource": {"type": "secret", "id": "db-password"}}


def test_a_workload_may_ask_only_for_itself(server: Server, authority: Authority) -> None:
    with _client(server, authority, authority.issue("invoicer", uris=(INVOICER,))) as client:
        assert client.check(_ask(INVOICER))["rule"] == "binding.for_itself"
        denied = client.check(_ask("spiffe://example.org/ns/hr/sa/payroll"))
        assert (denied["decision"], denied["layer"]) == ("deny", "binding")


def test_the_gateway_may_ask_for_others(server: Server, authority: Authority) -> None:
    with _client(server, authority, authority.issue("gateway", uris=(GATEWAY,))) as client:
        decision = client.check(_ask("spiffe://example.org/ns/hr/sa/payroll"))
        assert (decision["decision"], decision["rule"]) == ("allow", "binding.gateway")


def test_a_foreign_trust_domain_is_denied(server: Server, authority: Authority) -> None:
    foreign = authority.issue("intruder", uris=("spiffe://evil.test/ns/edge/sa/gateway",))
    with _client(server, authority, foreign) as client:
        decision = client.check(_ask("spiffe://evil.test/ns/edge/sa/gateway"))
        assert (decision["decision"], decision["layer"]) == ("deny", "transport")


def test_a_certificate_without_a_san_fails_closed(server: Server, authority: Authority) -> None:
    with _client(server, authority, authority.issue("legacy")) as client:
        decision = client.check(_ask("CN=legacy,O=Example"))
        assert (decision["decision"], decision["layer"]) == ("deny", "transport")
        assert decision["errors"][0]["path"] == "caller.trust_domain"


def test_two_spiffe_ids_give_no_identity(server: Server, authority: Authority) -> None:
    double = authority.issue("double", uris=(INVOICER, GATEWAY))
    with _client(server, authority, double) as client:
        decision = client.check(_ask(INVOICER))
        assert decision["decision"] == "deny"
        assert decision["errors"][0]["path"] == "caller.trust_domain"


@pytest.mark.parametrize("case", ["other CA", "expired", "no client certificate"])
def test_untrusted_clients_cannot_connect(server: Server, authority: Authority,
                                          case: str) -> None:
    if case == "other CA":
        issued: Issued | None = Authority.create("other-ca").issue("x", uris=(GATEWAY,))
    elif case == "expired":
        issued = authority.issue("old", uris=(GATEWAY,), expired=True)
    else:
        issued = None
    with _client(server, authority, issued) as client, pytest.raises(grpc.RpcError) as info:
        client.check(_ask(GATEWAY))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_identity_from_the_auth_context() -> None:
    assert caller_from_auth_context({}) is None
    assert caller_from_auth_context({"peer_uri": [GATEWAY.encode()]}) == {
        "id": GATEWAY, "trust_domain": "example.org", "path": "/ns/edge/sa/gateway"}
    assert caller_from_auth_context({"x509_subject": [b"CN=a,O=b"]}) == {"id": "CN=a,O=b"}
    assert caller_from_auth_context({"peer_uri": [GATEWAY.encode(), INVOICER.encode()],
                                     "x509_subject": [b"CN=a"]}) is None
    assert caller_from_auth_context({"peer_uri": [b"spiffe:///no-domain"]}) is None


def test_admin_calls_are_authorized_by_the_policy(server: Server, authority: Authority) -> None:
    from layergate.clients._gen import authz_pb2 as pb

    operator = authority.issue("operator", uris=("spiffe://example.org/ns/ops/sa/operator",))
    with _client(server, authority, operator) as client:
        info = client.admin.PolicyInfo(pb.PolicyInfoRequest())
        assert list(info.layers) == ["transport", "binding"]
        assert client.admin.ReloadPolicy(pb.ReloadPolicyRequest()).reloaded
    with _client(server, authority, authority.issue("gw", uris=(GATEWAY,))) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.admin.ReloadPolicy(pb.ReloadPolicyRequest())
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "binding.not_operator" in info.value.details()
