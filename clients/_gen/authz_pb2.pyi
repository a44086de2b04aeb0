from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ALLOW: _ClassVar[Decision]
    DECISION_DENY: _ClassVar[Decision]

class LayerOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYER_OUTCOME_UNSPECIFIED: _ClassVar[LayerOutcome]
    LAYER_OUTCOME_ALLOW: _ClassVar[LayerOutcome]
    LAYER_OUTCOME_DENY: _ClassVar[LayerOutcome]
    LAYER_OUTCOME_NO_MATCH: _ClassVar[LayerOutcome]

class BatchSemantic(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_SEMANTIC_EXECUTE_ALL: _ClassVar[BatchSemantic]
    BATCH_SEMANTIC_DENY_ON_FIRST_DENY: _ClassVar[BatchSemantic]
    BATCH_SEMANTIC_PERMIT_ON_FIRST_PERMIT: _ClassVar[BatchSemantic]
DECISION_UNSPECIFIED: Decision
DECISION_ALLOW: Decision
DECISION_DENY: Decision
LAYER_OUTCOME_UNSPECIFIED: LayerOutcome
LAYER_OUTCOME_ALLOW: LayerOutcome
LAYER_OUTCOME_DENY: LayerOutcome
LAYER_OUTCOME_NO_MATCH: LayerOutcome
BATCH_SEMANTIC_EXECUTE_ALL: BatchSemantic
BATCH_SEMANTIC_DENY_ON_FIRST_DENY: BatchSemantic
BATCH_SEMANTIC_PERMIT_ON_FIRST_PERMIT: BatchSemantic

class Subject(_message.Message):
    __slots__ = ("type", "id", "properties_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    properties_json: bytes
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., properties_json: _Optional[bytes] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("name", "properties_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    properties_json: bytes
    def __init__(self, name: _Optional[str] = ..., properties_json: _Optional[bytes] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("type", "id", "properties_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    properties_json: bytes
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., properties_json: _Optional[bytes] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("subject", "action", "resource", "context_json", "explain")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    action: Action
    resource: Resource
    context_json: bytes
    explain: bool
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., context_json: _Optional[bytes] = ..., explain: _Optional[bool] = ...) -> None: ...

class LayerResult(_message.Message):
    __slots__ = ("layer", "outcome", "rule")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    layer: str
    outcome: LayerOutcome
    rule: str
    def __init__(self, layer: _Optional[str] = ..., outcome: _Optional[_Union[LayerOutcome, str]] = ..., rule: _Optional[str] = ...) -> None: ...

class EvalError(_message.Message):
    __slots__ = ("rule", "code", "path", "message")
    RULE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    code: str
    path: str
    message: str
    def __init__(self, rule: _Optional[str] = ..., code: _Optional[str] = ..., path: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("decision", "layer", "rule", "reasons", "errors", "layers", "revision", "decision_id")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    layer: str
    rule: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedCompositeFieldContainer[EvalError]
    layers: _containers.RepeatedCompositeFieldContainer[LayerResult]
    revision: str
    decision_id: str
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., layer: _Optional[str] = ..., rule: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[_Union[EvalError, _Mapping]]] = ..., layers: _Optional[_Iterable[_Union[LayerResult, _Mapping]]] = ..., revision: _Optional[str] = ..., decision_id: _Optional[str] = ...) -> None: ...

class BatchItem(_message.Message):
    __slots__ = ("subject", "action", "resource", "context_json")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    action: Action
    resource: Resource
    context_json: bytes
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., context_json: _Optional[bytes] = ...) -> None: ...

class BatchCheckRequest(_message.Message):
    __slots__ = ("subject", "action", "resource", "context_json", "items", "semantic", "explain")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    action: Action
    resource: Resource
    context_json: bytes
    items: _containers.RepeatedCompositeFieldContainer[BatchItem]
    semantic: BatchSemantic
    explain: bool
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., context_json: _Optional[bytes] = ..., items: _Optional[_Iterable[_Union[BatchItem, _Mapping]]] = ..., semantic: _Optional[_Union[BatchSemantic, str]] = ..., explain: _Optional[bool] = ...) -> None: ...

class BatchCheckResponse(_message.Message):
    __slots__ = ("results", "revision")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CheckResponse]
    revision: str
    def __init__(self, results: _Optional[_Iterable[_Union[CheckResponse, _Mapping]]] = ..., revision: _Optional[str] = ...) -> None: ...

class StreamItem(_message.Message):
    __slots__ = ("correlation_id", "request")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    request: CheckRequest
    def __init__(self, correlation_id: _Optional[str] = ..., request: _Optional[_Union[CheckRequest, _Mapping]] = ...) -> None: ...

class StreamCheckRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[StreamItem]
    def __init__(self, items: _Optional[_Iterable[_Union[StreamItem, _Mapping]]] = ...) -> None: ...

class StreamResult(_message.Message):
    __slots__ = ("correlation_id", "response", "invalid_field")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    response: CheckResponse
    invalid_field: str
    def __init__(self, correlation_id: _Optional[str] = ..., response: _Optional[_Union[CheckResponse, _Mapping]] = ..., invalid_field: _Optional[str] = ...) -> None: ...

class StreamCheckResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StreamResult]
    def __init__(self, results: _Optional[_Iterable[_Union[StreamResult, _Mapping]]] = ...) -> None: ...

class PolicyInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyInfoResponse(_message.Message):
    __slots__ = ("revision", "layers", "sources", "loaded_at", "pid", "rules")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    revision: str
    layers: _containers.RepeatedScalarFieldContainer[str]
    sources: _containers.RepeatedScalarFieldContainer[str]
    loaded_at: float
    pid: int
    rules: int
    def __init__(self, revision: _Optional[str] = ..., layers: _Optional[_Iterable[str]] = ..., sources: _Optional[_Iterable[str]] = ..., loaded_at: _Optional[float] = ..., pid: _Optional[int] = ..., rules: _Optional[int] = ...) -> None: ...

class ValidatePolicyRequest(_message.Message):
    __slots__ = ("files", "data", "data_format")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FILES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DATA_FORMAT_FIELD_NUMBER: _ClassVar[int]
    files: _containers.ScalarMap[str, str]
    data: str
    data_format: str
    def __init__(self, files: _Optional[_Mapping[str, str]] = ..., data: _Optional[str] = ..., data_format: _Optional[str] = ...) -> None: ...

class PolicyDiagnostic(_message.Message):
    __slots__ = ("code", "message", "file", "line", "column")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    file: str
    line: int
    column: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., file: _Optional[str] = ..., line: _Optional[int] = ..., column: _Optional[int] = ...) -> None: ...

class ValidatePolicyResponse(_message.Message):
    __slots__ = ("ok", "revision", "diagnostics")
    OK_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    revision: str
    diagnostics: _containers.RepeatedCompositeFieldContainer[PolicyDiagnostic]
    def __init__(self, ok: _Optional[bool] = ..., revision: _Optional[str] = ..., diagnostics: _Optional[_Iterable[_Union[PolicyDiagnostic, _Mapping]]] = ...) -> None: ...

class ReloadPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadPolicyResponse(_message.Message):
    __slots__ = ("reloaded", "revision", "diagnostics")
    RELOADED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    reloaded: bool
    revision: str
    diagnostics: _containers.RepeatedCompositeFieldContainer[PolicyDiagnostic]
    def __init__(self, reloaded: _Optional[bool] = ..., revision: _Optional[str] = ..., diagnostics: _Optional[_Iterable[_Union[PolicyDiagnostic, _Mapping]]] = ...) -> None: ...

class Elevation(_message.Message):
    __slots__ = ("id", "subject", "requested_by", "roles", "actions", "resources", "session_id", "reason", "duration_seconds", "status", "created_at", "decided_by", "decided_at", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    subject: str
    requested_by: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    actions: _containers.RepeatedScalarFieldContainer[str]
    resources: _containers.RepeatedScalarFieldContainer[str]
    session_id: str
    reason: str
    duration_seconds: float
    status: str
    created_at: float
    decided_by: str
    decided_at: float
    expires_at: float
    def __init__(self, id: _Optional[str] = ..., subject: _Optional[str] = ..., requested_by: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., actions: _Optional[_Iterable[str]] = ..., resources: _Optional[_Iterable[str]] = ..., session_id: _Optional[str] = ..., reason: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., status: _Optional[str] = ..., created_at: _Optional[float] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[float] = ..., expires_at: _Optional[float] = ...) -> None: ...

class RequestElevationRequest(_message.Message):
    __slots__ = ("subject", "roles", "actions", "resources", "duration_seconds", "reason", "session_id")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    subject: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    actions: _containers.RepeatedScalarFieldContainer[str]
    resources: _containers.RepeatedScalarFieldContainer[str]
    duration_seconds: float
    reason: str
    session_id: str
    def __init__(self, subject: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., actions: _Optional[_Iterable[str]] = ..., resources: _Optional[_Iterable[str]] = ..., duration_seconds: _Optional[float] = ..., reason: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class DecideElevationRequest(_message.Message):
    __slots__ = ("id", "approve")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    id: str
    approve: bool
    def __init__(self, id: _Optional[str] = ..., approve: _Optional[bool] = ...) -> None: ...

class RevokeElevationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListElevationsRequest(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    def __init__(self, subject: _Optional[str] = ...) -> None: ...

class ListElevationsResponse(_message.Message):
    __slots__ = ("elevations",)
    ELEVATIONS_FIELD_NUMBER: _ClassVar[int]
    elevations: _containers.RepeatedCompositeFieldContainer[Elevation]
    def __init__(self, elevations: _Optional[_Iterable[_Union[Elevation, _Mapping]]] = ...) -> None: ...
