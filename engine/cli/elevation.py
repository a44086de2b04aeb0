"""`layergate elevation request|approve|reject|revoke|list`: the JIT workflow (needs mTLS)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
import orjson
from google.protobuf.json_format import MessageToDict

from layergate.clients import Client, credentials
from layergate.clients._gen import authz_pb2 as pb


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("elevation", help="request, approve, revoke JIT elevations")
    parser.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT of the server")
    parser.add_argument("--ca", type=Path, required=True, help="CA of the server (PEM)")
    parser.add_argument("--cert", type=Path, required=True, help="your certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="your private key (PEM)")
    steps = parser.add_subparsers(dest="step", required=True)
    ask = steps.add_parser("request", help="ask for an elevation (you are the requester)")
    ask.add_argument("--subject", required=True, help="the identity to elevate")
    ask.add_argument("--role", action="append", default=[], dest="roles")
    ask.add_argument("--action", action="append", default=[], dest="actions")
    ask.add_argument("--resource", action="append", default=[], dest="resources",
                     help="glob on resource.id the grant covers (repeatable)")
    ask.add_argument("--duration", type=float, required=True, help="seconds, once approved")
    ask.add_argument("--reason", required=True)
    ask.add_argument("--session", default="", help="bind the grant to context.session_id")
    for name in ("approve", "reject", "revoke"):
        steps.add_parser(name, help=f"{name} an elevation").add_argument("id")
    steps.add_parser("list", help="list elevations").add_argument("--subject", default="")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    creds = credentials(args.ca.read_bytes(), args.key.read_bytes(), args.cert.read_bytes())
    with Client(args.target, channel_credentials=creds) as client:
        admin = client.admin
        try:
            if args.step == "request":
                result = admin.RequestElevation(pb.RequestElevationRequest(
                    subject=args.subject, roles=args.roles, actions=args.actions,
                    resources=args.resources, duration_seconds=args.duration,
                    reason=args.reason, session_id=args.session))
            elif args.step in ("approve", "reject"):
                result = admin.DecideElevation(pb.DecideElevationRequest(
                    id=args.id, approve=args.step == "approve"))
            elif args.step == "revoke":
                result = admin.RevokeElevation(pb.RevokeElevationRequest(id=args.id))
            else:
                result = admin.ListElevations(pb.ListElevationsRequest(subject=args.subject))
        except grpc.RpcError as error:
            print(f"layergate: {error.code().name}: {error.details()}", file=sys.stderr)
            return 2
    sys.stdout.buffer.write(orjson.dumps(MessageToDict(result, preserving_proto_field_name=True))
                            + b"\n")
    return 0
