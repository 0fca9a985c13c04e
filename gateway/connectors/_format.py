"""The connector format: one YAML file per SaaS platform (``connectors/*.yaml``).

A connector names its API document, the credential preset its users sign in with, and
the operations agents get, with better names and descriptions, fixed arguments, the
scopes each needs, uniform paging and trimmed results. ``switchboard schema --connector``
prints the JSON Schema of this format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.config import (
    FailureSpec,
    Model,
    Name,
    RateLimitSpec,
    ShapeSpec,
    load_yaml_model,
)

ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class OAuthPreset(Model):
    """Per-user OAuth 2.0 (authorization code with PKCE): each user consents once."""

    preset: Literal["github", "google", "microsoft", "slack", "salesforce", "atlassian"] | None = Field(
        None, description="The identity service's endpoints for this platform."
    )
    authorize_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    token_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    scopes: list[str] = Field(
        default_factory=list,
        description="Always asked for at consent (offline_access and the like); each operation adds its own.",
    )
    authorize_params: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _endpoints(self) -> OAuthPreset:
        if self.preset is None and not (self.authorize_url and self.token_url):
            raise ValueError("give a `preset` or both `authorize_url` and `token_url`")
        return self


class ApiKeyAlternative(Model):
    """A static credential the platform also accepts (a personal access token, a bot token)."""

    scheme: str = Field(description="The document's security scheme it fills.")
    description: str = Field(description="What the key is and where a user makes one.")


class CredentialPreset(Model):
    """How calls are signed."""

    scheme: str = Field(description="The document's security scheme the user's OAuth token fills.")
    oauth: OAuthPreset
    api_key: ApiKeyAlternative | None = None


class ConnectorOperation(ShapeSpec):
    """One curated operation: a tool (with the shape of its results: items, fields, paging)."""

    operation: str = Field(description="The operationId in the API document.")
    name: ToolName = Field(description="The tool's name (the gateway puts '<target>___' before it).")
    description: str | None = Field(None, description="Replaces the document's description.")
    title: str | None = None
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="Fixed argument values: hidden from the model, always sent."
    )
    scopes: list[str] = Field(default_factory=list, description="OAuth scopes the operation needs.")


class RateLimitHint(Model):
    """The platform's own limit; enabling the connector adds it as a per-user rate limit."""

    limit: str = Field(description="'5000/hour', '100/minute' (the limits library's syntax).")
    note: str = ""

    @field_validator("limit")
    @classmethod
    def _parses(cls, limit: str) -> str:
        return RateLimitSpec(limit=limit).limit  # the same rule a gateway's rate_limits follow


class Connector(Model):
    """A packaged SaaS platform."""

    name: Name
    title: str
    description: str
    spec: str = Field(description="The API document, relative to this file (or absolute).")
    base_url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        None, description="Overrides the document's servers."
    )
    server_variables: dict[str, str] = Field(
        default_factory=dict,
        description="What each of the document's server variables is (asked for when enabling).",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request.")
    credentials: CredentialPreset
    failure: FailureSpec | None = None
    rate_limit: RateLimitHint | None = None
    operations: list[ConnectorOperation] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Connector:
        for what in ("name", "operation"):
            values = [getattr(o, what) for o in self.operations]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"operations: {what} {', '.join(map(repr, dupes))} appears more than once")
        return self

    def scopes(self, tools: list[str] | None = None) -> list[str]:
        """The scopes consent asks for: the preset's and those of ``tools`` (default: all)."""
        out = list(self.credentials.oauth.scopes)
        for op in self.operations:
            if tools is None or op.name in tools:
                out += [s for s in op.scopes if s not in out]
        return out


def load_connector(path: Path) -> Connector:
    """Read and validate one connector file (errors name the file, line and field)."""
    return load_yaml_model(Connector, path, schema_hint="switchboard schema --connector")
