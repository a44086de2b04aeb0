"""The protobuf edge: hand-framed response bytes are exactly the messages protobuf builds."""

from __future__ import annotations

import pytest

from layergate.clients._gen import authz_pb2 as pb
from layergate.dsl import parse_policy
from layergate.engine import Authorizer, compile_policy, wire
from layergate.engine.decision import invalid_request_decision

POLICY = """layers [identity, request]
layer identity {
  known: allow * on * when subject.id in ["svc-a", "svc-b"]
}
layer request {
  big: deny * on * when context.amount > 100
  any: allow * on *
}
"""


def _request(subject: str, **context: object) -> dict:
    return {"subject": {"type": "svc", "id": subject}, "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d"}, "context": dict(context)}


@pytest.fixture(scope="module")
def decisions() -> list:
    authorizer = Authorizer(compile_policy(parse_policy(POLICY)))
    asked = [_request("svc-a", amount=1), _request("svc-a", amount=500), _request("svc-x"),
             _request("svc-b", amount="lots"), _request("svc-b")]
    out = [authorizer.check(r) for r in asked] + [authorizer.check(r, explain=True)
                                                  for r in asked]
    return [*out, invalid_request_decision("must be a string", "items[3].subject.id", "rev")]


IDS = ["", "a1b2c3-1", "é-ünïcode", "x" * 200, "y" * 20_000]  # 200 and 20,000: longer varints


def test_check_responses_match_protobuf(decisions: list) -> None:
    encoder = wire.Encoder(limit=4)  # small: the cache is cleared along the way
    for decision in decisions:
        for layers in (False, True):
            for decision_id in IDS:
                encoded = encoder.check_response(decision, decision_id, layers)
                expected = wire.response(decision, decision_id, layers)
                assert pb.CheckResponse.FromString(encoded) == expected


def test_batch_and_stream_framing_match_protobuf(decisions: list) -> None:
    encoder = wire.Encoder()
    ids = [f"id-{n}" for n in range(len(decisions))]
    results = [encoder.check_response(d, i, True) for d, i in zip(decisions, ids, strict=True)]
    expected = pb.BatchCheckResponse(revision="rev-1")
    for decision, decision_id in zip(decisions, ids, strict=True):
        expected.results.append(wire.response(decision, decision_id, True))
    assert pb.BatchCheckResponse.FromString(encoder.batch_response(results, "rev-1")) == expected
    assert pb.BatchCheckResponse.FromString(encoder.batch_response([], "")) == \
        pb.BatchCheckResponse()

    stream = pb.StreamCheckResponse()
    parts = []
    for n, (decision, result) in enumerate(zip(decisions, results, strict=True)):
        correlation, invalid = ("" if n == 0 else f"c{n}"), ("subject.id" if n % 3 else "")
        parts.append(encoder.stream_result(correlation, result, invalid))
        item = stream.results.add(correlation_id=correlation, invalid_field=invalid)
        item.response.CopyFrom(wire.response(decision, ids[n], True))
    assert pb.StreamCheckResponse.FromString(encoder.stream_response(parts)) == stream


def test_a_recycled_decision_is_never_served_from_another_decisions_bytes() -> None:
    encoder = wire.Encoder()
    authorizer = Authorizer(compile_policy(parse_policy(POLICY)))
    first = authorizer.check(_request("svc-a", amount=1))
    encoder.check_response(first, "", False)
    other = invalid_request_decision("bad", "subject", "rev")
    encoder._bodies[(id(other), False)] = (first, b"stale")  # as if `other` reused an id
    assert pb.CheckResponse.FromString(encoder.check_response(other, "", False)) == \
        wire.response(other, "", False)


def test_the_handlers_cover_every_authorizer_method() -> None:
    import grpc

    from layergate.engine.server import _add_authorizer

    registered: dict[str, dict] = {}

    class Recorder:
        def add_generic_rpc_handlers(self, handlers: tuple) -> None:
            assert all(isinstance(h, grpc.GenericRpcHandler) for h in handlers)

        def add_registered_method_handlers(self, name: str, handlers: dict) -> None:
            registered[name] = handlers

    class Service:
        Check = BatchCheck = StreamCheck = staticmethod(lambda request, context: b"")

    _add_authorizer(Service(), Recorder())  # type: ignore[arg-type]
    service = pb.DESCRIPTOR.services_by_name["Authorizer"]
    assert set(registered[service.full_name]) == {m.name for m in service.methods}
