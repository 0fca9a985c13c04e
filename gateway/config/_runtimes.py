"""Hosted agents in ``switchboard.yaml`` (ADR 0041): each a folder deployed as a new version
whenever its files or settings change, and its endpoints. The file is the operator's, so the
folder is read on the host and its requirements are installed as pip is configured there."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.core.model import Model

RUNTIME_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,47}$"
ENDPOINT_NAME = r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$"


class RuntimeEndpointSpec(Model):
    """A named endpoint: the version new sessions get, and a canary's share."""

    name: str = Field(pattern=ENDPOINT_NAME, description="Not DEFAULT (it follows the latest version).")
    version: int | None = Field(None, ge=1, description="The version it points at (the latest if left out).")
    canary: int | None = Field(None, ge=1, description="A second version, for `weight` % of new sessions.")
    weight: int = Field(0, ge=0, le=100, description="The canary's share of new sessions, in percent.")
    description: str = Field("", max_length=256)

    @model_validator(mode="after")
    def _named(self) -> RuntimeEndpointSpec:
        if self.name == "DEFAULT":
            raise ValueError("DEFAULT always follows the latest version; name your endpoint otherwise")
        if self.weight and self.canary is None:
            raise ValueError("a weight needs a canary version to send that share to")
        return self


class RuntimeSpec(Model):
    """A hosted agent deployed from a folder (ADR 0039): a new version when the folder changes."""

    name: str = Field(pattern=RUNTIME_NAME, description="Invoked at /runtimes/{name}/invocations.")
    path: str = Field(description="The agent's folder (code and requirements.txt), relative to this file.")
    entry: str = Field("main.py", description="The file that starts the app.")
    protocol: Literal["HTTP", "MCP", "A2A"] = Field(
        "HTTP", description="HTTP on 8080, MCP on 8000, A2A on 9000."
    )
    environment: dict[str, str] = Field(default_factory=dict, description="Variables the app sees.")
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Variables holding the key of an API key credential provider (by name).",
    )
    description: str = ""
    endpoints: list[RuntimeEndpointSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_endpoints(self) -> RuntimeSpec:
        names = [e.name for e in self.endpoints]
        doubled = next((n for n in names if names.count(n) > 1), None)
        if doubled is not None:
            raise ValueError(f"two endpoints are named {doubled!r}")
        return self
