"""The configuration model: one YAML document, a discriminated union on ``kind``.

The same model is read from ``switchboard.yaml``, applied by ``switchboard
apply -f`` and written through the admin API; all three compile to the same
runtime form (the hub's live gateways). Errors name the file, the line and the
field, and say how to fix it.

Split by concern: targets (``_targets``, with the OpenAPI shaping settings in
``_shaping``), who calls and how upstreams are called (``_credentials``), the
call pipeline's settings (``_pipeline``), the gateway and the document
(``_gateway``), and reading and checking it (``_loading``). This face is what
the rest of the gateway imports.
"""

from gateway.config._credentials import (
    ApiKeyAuth,
    ApiKeyCredential,
    Auth,
    AuthorizationCode,
    ClaimRuleSpec,
    ClientCredentials,
    CredentialProvider,
    JwtAuth,
    NoAuth,
    TokenExchange,
)
from gateway.config._gateway import (
    AGENTCORE_SEARCH_TOOL,
    SEARCH_TOOL,
    A2aAgentSpec,
    CodeModeSpec,
    Document,
    GatewaySpec,
    SearchSpec,
)
from gateway.config._loading import (
    StoredGateway,
    gateway_from_store,
    json_schema,
    load_document,
    load_file,
    load_yaml_model,
    to_store,
    validate,
)
from gateway.config._pipeline import (
    ApprovalSpec,
    CacheSpec,
    HttpInterceptor,
    InterceptorSpec,
    LambdaInterceptor,
    PythonInterceptor,
    RateLimitSpec,
    RedactInterceptor,
    ResilienceSpec,
    parse_limit,
)
from gateway.config._policy import PolicySpec, cedar_shape
from gateway.config._runtimes import RuntimeEndpointSpec, RuntimeSpec
from gateway.config._shaping import FailureSpec, PagingSpec, ShapeSpec
from gateway.config._targets import (
    TARGET_KINDS,
    A2aTarget,
    CodeInterpreterTarget,
    ConnectorTarget,
    FunctionRef,
    FunctionTarget,
    HttpTarget,
    LambdaTarget,
    McpCredentialRef,
    McpSandbox,
    McpTarget,
    McpUserCredential,
    MemoryTarget,
    OpenApiTarget,
    Override,
    PluginTarget,
    ResultsSpec,
    RuntimeTarget,
    SecretRef,
    Target,
    TargetBase,
    TlsFiles,
    ToolDef,
    read_secret,
)
from gateway.core.model import Model, Name
from gateway.yaml_lines import parse_yaml

__all__ = [
    "AGENTCORE_SEARCH_TOOL",
    "SEARCH_TOOL",
    "TARGET_KINDS",
    "A2aAgentSpec",
    "A2aTarget",
    "ApiKeyAuth",
    "ApiKeyCredential",
    "ApprovalSpec",
    "Auth",
    "AuthorizationCode",
    "CacheSpec",
    "ClaimRuleSpec",
    "ClientCredentials",
    "CodeInterpreterTarget",
    "CodeModeSpec",
    "ConnectorTarget",
    "CredentialProvider",
    "Document",
    "FailureSpec",
    "FunctionRef",
    "FunctionTarget",
    "GatewaySpec",
    "HttpInterceptor",
    "HttpTarget",
    "InterceptorSpec",
    "JwtAuth",
    "LambdaInterceptor",
    "LambdaTarget",
    "McpCredentialRef",
    "McpSandbox",
    "McpTarget",
    "McpUserCredential",
    "MemoryTarget",
    "Model",
    "Name",
    "NoAuth",
    "OpenApiTarget",
    "Override",
    "PagingSpec",
    "PluginTarget",
    "PolicySpec",
    "PythonInterceptor",
    "RateLimitSpec",
    "RedactInterceptor",
    "ResilienceSpec",
    "ResultsSpec",
    "RuntimeEndpointSpec",
    "RuntimeSpec",
    "RuntimeTarget",
    "SearchSpec",
    "SecretRef",
    "ShapeSpec",
    "StoredGateway",
    "Target",
    "TargetBase",
    "TlsFiles",
    "TokenExchange",
    "ToolDef",
    "cedar_shape",
    "gateway_from_store",
    "json_schema",
    "load_document",
    "load_file",
    "load_yaml_model",
    "parse_limit",
    "parse_yaml",
    "read_secret",
    "to_store",
    "validate",
]
