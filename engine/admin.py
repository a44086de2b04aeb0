"""The Admin service: policy info, dry-run validation, reload, and the JIT elevation workflow.

Every call is decided by the loaded policy itself, against the mTLS caller.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import grpc

from layergate.clients._gen import authz_pb2 as pb
from layergate.clients._gen import authz_pb2_grpc as rpc
from layergate.dsl import PolicyError, ast, parse_data
from layergate.dsl.loader import compile_sources

from . import wire
from .compiler import compile_policy
from .grants import GrantError, GrantStore
from .identity import caller_of

if TYPE_CHECKING:
    from .server import PolicyHolder

ADMIN_RESOURCE = {"type": "layergate_admin", "id": "admin"}


class AdminService(rpc.AdminServicer):
    """Operates the server. Every call is authorized by the loaded policy itself, as the
    request {subject: the mTLS caller, action: admin_info | admin_validate | admin_reload,
    resource: layergate_admin}; without mTLS the service is off, unless insecure loopback
    administration was asked for explicitly (development only)."""

    def __init__(self, holder: PolicyHolder, insecure: bool, grants: GrantStore | None,
                 max_elevation_seconds: float) -> None:
        self.holder = holder
        self.insecure = insecure
        self.grants = grants
        self.max_elevation_seconds = max_elevation_seconds

    def _authorize(self, action: str, context: grpc.ServicerContext,
                   resource: Mapping[str, Any] = ADMIN_RESOURCE) -> str:
        """Check the call against the policy; returns the caller's id ("" in insecure mode)."""
        caller = caller_of(context)
        if caller is None:
            if self.insecure and resource is ADMIN_RESOURCE:
                return ""
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "the admin service needs a client certificate (mTLS); for local "
                          "development, serve with --admin-insecure-loopback (elevations "
                          "always need mTLS: they record who asked and who approved)")
        request = {"subject": {"type": "caller", "id": caller["id"]},
                   "action": {"name": action}, "resource": resource}
        decision = self.holder.current.authorizer.check(request, caller)
        if not decision.allowed:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"`{action}` denied for {caller['id']} by layer `{decision.layer}`"
                          + (f" rule `{decision.rule}`" if decision.rule else " (no rule)"))
        return caller["id"]

    def PolicyInfo(self, request: pb.PolicyInfoRequest,
                   context: grpc.ServicerContext) -> pb.PolicyInfoResponse:
        self._authorize("admin_info", context)
        loaded = self.holder.current
        tables = loaded.authorizer.tables
        return pb.PolicyInfoResponse(revision=tables.revision, layers=tables.layer_names,
                                     sources=loaded.sources, loaded_at=loaded.loaded_at,
                                     pid=os.getpid(), rules=tables.rule_count)

    def ValidatePolicy(self, request: pb.ValidatePolicyRequest,
                       context: grpc.ServicerContext) -> pb.ValidatePolicyResponse:
        self._authorize("admin_validate", context)
        sources = [ast.Source(name, text) for name, text in sorted(request.files.items())]
        try:
            data = None
            if request.data:
                name = "data.yaml" if request.data_format == "yaml" else "data.json"
                data = parse_data(request.data, name)
            tables = compile_policy(compile_sources(sources, data), data)
        except PolicyError as error:
            return pb.ValidatePolicyResponse(ok=False,
                                             diagnostics=wire.diagnostics(error.diagnostics))
        return pb.ValidatePolicyResponse(ok=True, revision=tables.revision)

    def ReloadPolicy(self, request: pb.ReloadPolicyRequest,
                     context: grpc.ServicerContext) -> pb.ReloadPolicyResponse:
        self._authorize("admin_reload", context)
        reloaded, problems = self.holder.reload()
        return pb.ReloadPolicyResponse(reloaded=reloaded,
                                       revision=self.holder.current.authorizer.revision,
                                       diagnostics=wire.diagnostics(problems))


    # -- JIT elevation -------------------------------------------------------------------

    def _store(self, context: grpc.ServicerContext) -> GrantStore:
        if self.grants is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this server keeps no grants")
        return self.grants

    def _elevation_resource(self, grant: Any) -> dict[str, Any]:
        return {"type": "elevation", "id": grant.id or "new", "properties": {
            "subject": grant.subject, "requested_by": grant.requested_by,
            "roles": list(grant.roles), "actions": list(grant.actions),
            "resources": list(grant.resources), "duration_seconds": grant.duration_seconds,
            "session_id": grant.session_id, "status": grant.status}}

    def RequestElevation(self, request: pb.RequestElevationRequest,
                         context: grpc.ServicerContext) -> pb.Elevation:
        store = self._store(context)
        if request.duration_seconds > self.max_elevation_seconds:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"duration_seconds: at most {self.max_elevation_seconds:g}")
        if not request.subject:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "subject: is required")
        draft = _Draft(request.subject, list(request.roles), list(request.actions),
                       list(request.resources), request.duration_seconds, request.session_id)
        requester = self._authorize("elevation_request", context,
                                    self._elevation_resource(draft.with_requester(
                                        caller_of(context))))
        try:
            grant = store.request(request.subject, requester, list(request.roles),
                                  list(request.actions), list(request.resources),
                                  request.duration_seconds, request.reason, request.session_id)
        except GrantError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return _elevation(grant)

    def DecideElevation(self, request: pb.DecideElevationRequest,
                        context: grpc.ServicerContext) -> pb.Elevation:
        store = self._store(context)
        grant = self._existing(store, request.id, context)
        action = "elevation_approve" if request.approve else "elevation_reject"
        approver = self._authorize(action, context, self._elevation_resource(grant))
        try:
            return _elevation(store.decide(request.id, approver, request.approve))
        except GrantError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def RevokeElevation(self, request: pb.RevokeElevationRequest,
                        context: grpc.ServicerContext) -> pb.Elevation:
        store = self._store(context)
        grant = self._existing(store, request.id, context)
        revoker = self._authorize("elevation_revoke", context, self._elevation_resource(grant))
        try:
            return _elevation(store.revoke(request.id, revoker))
        except GrantError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def ListElevations(self, request: pb.ListElevationsRequest,
                       context: grpc.ServicerContext) -> pb.ListElevationsResponse:
        store = self._store(context)
        self._authorize("elevation_list", context, {"type": "elevation", "id": "list"})
        return pb.ListElevationsResponse(
            elevations=[_elevation(g) for g in store.list(request.subject)])

    @staticmethod
    def _existing(store: GrantStore, grant_id: str, context: grpc.ServicerContext) -> Any:
        try:
            return store.get(grant_id)
        except GrantError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))


@dataclass(frozen=True)
class _Draft:
    """A requested elevation before it is stored, as the policy sees it."""

    subject: str
    roles: list[str]
    actions: list[str]
    resources: list[str]
    duration_seconds: float
    session_id: str
    requested_by: str = ""
    id: str = ""
    status: str = "new"

    def with_requester(self, caller: Mapping[str, str] | None) -> _Draft:
        return replace(self, requested_by=(caller or {}).get("id", ""))


def _elevation(grant: Any) -> pb.Elevation:
    return pb.Elevation(**grant.to_json())
