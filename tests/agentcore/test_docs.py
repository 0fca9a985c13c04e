"""docs/agentcore.md lists every operation of both AgentCore models once, and says "served" for
exactly those Switchboard has a handler for."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.session

from gateway.agentcore import (
    _code,
    _gateways,
    _identity,
    _limits,
    _memory,
    _oauth,
    _policy,
    _runtime,
    _runtime_control,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "agentcore.md"


def test_the_table_of_operations_matches_the_handlers() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|$", DOC.read_text(), re.MULTILINE)
    listed = [name for name, _ in rows]
    session = botocore.session.get_session()
    every = [
        name
        for service in ("bedrock-agentcore-control", "bedrock-agentcore")
        for name in session.get_service_model(service).operation_names
    ]
    assert sorted(listed) == sorted(every)
    served = {name for name, plan in rows if plan.strip() == "served"}
    handlers = {*_gateways.HANDLERS, *_limits.HANDLERS, *_identity.CONTROL, *_identity.DATA}
    handlers |= {*_runtime.DATA, *_runtime_control.CONTROL, *_memory.CONTROL, *_memory.DATA}
    assert served == handlers | {*_oauth.CONTROL, *_oauth.DATA, *_policy.CONTROL, *_code.CONTROL, *_code.DATA}
