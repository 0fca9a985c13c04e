"""Memory resources: their settings and long-term strategies, read from AgentCore's input shapes.

A strategy arrives as AgentCore's ``MemoryStrategyInput`` (one of ``semanticMemoryStrategy``,
``summaryMemoryStrategy``, ``userPreferenceMemoryStrategy``, ``episodicMemoryStrategy``,
``customMemoryStrategy``) and is kept as a `Strategy`. Namespace templates may use
``{actorId}``, ``{sessionId}`` and ``{memoryStrategyId}`` (``{strategyId}`` too, an alias), and
nothing else: a template is checked when the strategy is made, not when a record would need it.
"""

from __future__ import annotations

import base64
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from memory._types import (
    OVERRIDDEN,
    Invalid,
    MemoryView,
    NotFound,
    Override,
    Strategy,
    StrategyType,
    Unavailable,
)

NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")
ID_PART = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_]*")
ACTOR = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_/]*(?::[a-zA-Z0-9-_/]+)*[a-zA-Z0-9-_/]*")
_NAMESPACE = re.compile(r"[a-zA-Z0-9\-_/]*(\{[a-zA-Z][a-zA-Z0-9]*\}[a-zA-Z0-9\-_/]*)*")
_VARIABLE = re.compile(r"\{([a-zA-Z][a-zA-Z0-9]*)\}")
VARIABLES = ("actorId", "sessionId", "memoryStrategyId", "strategyId")
MIN_EXPIRY_DAYS, MAX_EXPIRY_DAYS = 3, 365
MAX_STRATEGIES = 6  # (AgentCore's limit too)

_KINDS: dict[str, StrategyType] = {
    "semanticMemoryStrategy": "SEMANTIC",
    "summaryMemoryStrategy": "SUMMARIZATION",
    "userPreferenceMemoryStrategy": "USER_PREFERENCE",
    "episodicMemoryStrategy": "EPISODIC",
    "customMemoryStrategy": "CUSTOM",
}
_DEFAULT_NAMESPACES: dict[StrategyType, str] = {
    "SEMANTIC": "/strategies/{memoryStrategyId}/actors/{actorId}/",
    "SUMMARIZATION": "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/",
    "USER_PREFERENCE": "/strategies/{memoryStrategyId}/actors/{actorId}/",
    "EPISODIC": "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/",
}
_OVERRIDES: dict[str, Override] = {
    "semanticOverride": "SEMANTIC_OVERRIDE",
    "summaryOverride": "SUMMARY_OVERRIDE",
    "userPreferenceOverride": "USER_PREFERENCE_OVERRIDE",
    "episodicOverride": "EPISODIC_OVERRIDE",
}


def new_id(stem: str, length: int = 10) -> str:
    alphabet = string.ascii_letters + string.digits
    return f"{stem}-{''.join(secrets.choice(alphabet) for _ in range(length))}"


def check_name(name: Any, where: str = "name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise Invalid(
            f"{where} {name!r} is not a memory name: start with a letter, then up to 47 letters, "
            "digits or underscores"
        )
    return name


def check_part(value: Any, where: str, pattern: re.Pattern[str] = ID_PART, most: int = 100) -> str:
    """An actor, session or branch id as AgentCore allows it."""
    if value is None:
        raise Invalid(f"{where} is required")
    if not isinstance(value, str) or not value or len(value) > most or not pattern.fullmatch(value):
        raise Invalid(
            f"{where} {value!r} is not valid: 1 to {most} characters, starting with a letter or digit, "
            "then letters, digits, '-' or '_'" + (", '/' or ':'" if pattern is ACTOR else "")
        )
    return value


def check_expiry(days: Any, where: str = "eventExpiryDuration") -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_EXPIRY_DAYS <= days <= MAX_EXPIRY_DAYS:
        raise Invalid(
            f"{where} must be a whole number of days from {MIN_EXPIRY_DAYS} to {MAX_EXPIRY_DAYS}, "
            f"not {days!r}"
        )
    return days


def check_template(template: Any, where: str) -> str:
    """A namespace template: AgentCore's characters, and only the variables memory fills in."""
    if not isinstance(template, str) or not 1 <= len(template) <= 512 or not _NAMESPACE.fullmatch(template):
        raise Invalid(
            f"{where}: {template!r} is not a namespace template: 1 to 512 of letters, digits, '-', '_', "
            "'/', and variables in braces such as {actorId}"
        )
    unknown = [v for v in _VARIABLE.findall(template) if v not in VARIABLES]
    if unknown:
        raise Invalid(
            f"{where}: {template!r} uses {', '.join('{' + v + '}' for v in unknown)}; a namespace "
            "template may use {actorId}, {sessionId} and {memoryStrategyId}"
        )
    if any(len(_VARIABLE.findall(segment)) > 2 for segment in template.split("/")):
        raise Invalid(
            f"{where}: {template!r} has more than two variables between two '/': put each in a "
            "segment of its own, e.g. /{actorId}/{sessionId}/"
        )
    if "}{" in template:
        raise Invalid(
            f"{where}: {template!r} has two variables with nothing between them, so a namespace "
            "made from it could not be read back: separate them, e.g. /{actorId}/{sessionId}/"
        )
    return template


def check_namespace(namespace: Any, where: str = "namespace") -> str:
    """A concrete namespace (or prefix): a template's characters, with no variables left."""
    check_template(namespace, where)
    if "{" in namespace:
        raise Invalid(f"{where}: {namespace!r} still holds a variable; give the namespace itself")
    return str(namespace)


def resolve(template: str, *, actor: str, session: str | None, strategy: str) -> str | None:
    """The namespace a template names for this actor and session (None: it needs a session that
    this record does not have)."""
    values = {"actorId": actor, "memoryStrategyId": strategy, "strategyId": strategy}
    if session is not None:
        values["sessionId"] = session
    missing = [v for v in _VARIABLE.findall(template) if v not in values]
    if missing:
        return None
    return _VARIABLE.sub(lambda m: values[m.group(1)], template)


def actor_of(template: str, namespace: str) -> str | None:
    """The actor a namespace made from ``template`` belongs to (None: the template names none, or
    the namespace was not made from it).

    Variables never hold '/', so the template and the namespace are compared segment by segment,
    each segment on its own; `check_template` allows at most two variables in a segment, never
    side by side, so matching one costs at most about its length squared."""
    if "{actorId}" not in template:
        return None
    parts, found = template.split("/"), namespace.split("/")
    if len(parts) != len(found):
        return None
    for part, segment in zip(parts, found, strict=True):
        if "{" not in part:
            if part != segment:
                return None
            continue
        names = _VARIABLE.findall(part)
        pattern = "".join(
            "([^/]+)" if piece.startswith("{") else re.escape(piece)
            for piece in re.split(r"(\{[a-zA-Z][a-zA-Z0-9]*\})", part)
        )
        match = re.fullmatch(pattern, segment)
        if match is None:
            return None
        if "actorId" in names:
            return match.group(names.index("actorId") + 1)
    return None


def check_models(
    new: Sequence[Strategy], every: Sequence[Strategy], configured: bool, choices: frozenset[str]
) -> None:
    """New strategies need the memory model; any strategy's own model must be one offered."""
    if new and not configured:
        raise Unavailable(
            f"strategy {new[0].name!r} ({new[0].type}) needs a model to extract records, and none is "
            "configured: set SWITCHBOARD_MEMORY_MODEL (e.g. openai:gpt-4o-mini with "
            "SWITCHBOARD_MEMORY_MODEL_URL, bedrock:MODEL_ID or anthropic:MODEL), or create the memory "
            "without strategies (short-term events and directly written records need no model)"
        )
    for strategy in every:
        if strategy.model_id is not None and strategy.model_id not in choices:
            raise Invalid(
                f"strategy {strategy.name!r} names the model {strategy.model_id!r}, which the operator "
                "does not offer: leave modelId out to use the memory model, or ask the operator to add "
                "it to SWITCHBOARD_MEMORY_MODEL_CHOICES"
            )


def strategies_from(
    inputs: Any, *, existing: Sequence[Strategy] = (), now: float, where: str = "memoryStrategies"
) -> list[Strategy]:
    """New strategies from AgentCore's ``MemoryStrategyInput`` list."""
    if not isinstance(inputs, list):
        raise Invalid(f"{where} must be a list of strategies")
    names = {s.name for s in existing}
    if len(existing) + len(inputs) > MAX_STRATEGIES:
        raise Invalid(
            f"{where}: a memory has at most {MAX_STRATEGIES} strategies (each one is a model request "
            f"per batch of events); this one would have {len(existing) + len(inputs)}"
        )
    made: list[Strategy] = []
    for i, item in enumerate(inputs):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in _KINDS:
            raise Invalid(f"{at} must have exactly one of {', '.join(_KINDS)}")
        key, body = next(iter(item.items()))
        strategy = _strategy(_KINDS[key], body if isinstance(body, dict) else {}, f"{at}.{key}", now)
        if strategy.name in names:
            raise Invalid(f"{at}: the memory already has a strategy named {strategy.name!r}")
        names.add(strategy.name)
        made.append(strategy)
    return made


def _strategy(kind: StrategyType, body: Mapping[str, Any], at: str, now: float) -> Strategy:
    name = check_name(body.get("name"), f"{at}.name")
    strategy_id = new_id(name)
    override: Override | None = None
    extraction = consolidation = model = None
    if kind == "CUSTOM":
        override, extraction, consolidation, model = _custom(body.get("configuration"), f"{at}.configuration")
    effective = kind if override is None else OVERRIDDEN[override]
    templates = _templates(body, at) or [
        _DEFAULT_NAMESPACES.get(effective, "/strategies/{memoryStrategyId}/actors/{actorId}/")
    ]
    reflection: list[str] = []
    if effective == "EPISODIC":
        config = _object(body.get("reflectionConfiguration"), f"{at}.reflectionConfiguration")
        reflection = _templates(config, f"{at}.reflectionConfiguration") or [
            "/strategies/{memoryStrategyId}/actors/{actorId}/"
        ]
    expiry = _object(body.get("recordExpirySpecification"), f"{at}.recordExpirySpecification").get(
        "recordExpiryDurationDays"
    )
    if expiry is not None:
        expiry = check_expiry(expiry, f"{at}.recordExpirySpecification.recordExpiryDurationDays")
    description = body.get("description")
    return Strategy(
        strategy_id=strategy_id,
        name=name,
        description=description if isinstance(description, str) else None,
        type=kind,
        override=override,
        namespaces=templates,
        reflection_namespaces=reflection,
        extraction_prompt=extraction,
        consolidation_prompt=consolidation,
        model_id=model,
        record_expiry_days=expiry,
        created_at=now,
        updated_at=now,
    )


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be an object")
    return value


def _templates(body: Mapping[str, Any], at: str) -> list[str]:
    found = body.get("namespaceTemplates") or body.get("namespaces") or []
    if not isinstance(found, list):
        raise Invalid(f"{at}.namespaceTemplates must be a list of namespace templates")
    return [check_template(t, f"{at}.namespaceTemplates[{i}]") for i, t in enumerate(found)]


def _custom(config: Any, at: str) -> tuple[Override, str | None, str | None, str | None]:
    if not isinstance(config, dict) or not config:
        raise Invalid(f"{at} must name the built-in strategy it overrides: one of {', '.join(_OVERRIDES)}")
    if "selfManagedConfiguration" in config:
        raise Invalid(
            f"{at}.selfManagedConfiguration: self-managed strategies (records written by your own "
            "pipeline) need no strategy here: write them with BatchCreateMemoryRecords"
        )
    keys = [k for k in config if k in _OVERRIDES]
    if len(keys) != 1:
        raise Invalid(f"{at} must have exactly one of {', '.join(_OVERRIDES)}")
    step = config[keys[0]] if isinstance(config[keys[0]], dict) else {}
    prompts: dict[str, str | None] = {"extraction": None, "consolidation": None}
    model: str | None = None
    for part in prompts:
        found = step.get(part) or {}
        if not isinstance(found, dict):
            raise Invalid(f"{at}.{keys[0]}.{part} must be an object with appendToPrompt and modelId")
        # AgentCore nests the step once more (customExtractionConfiguration...); accept either.
        inner = next((v for v in found.values() if isinstance(v, dict)), found)
        prompt = inner.get("appendToPrompt")
        if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 30_000):
            raise Invalid(f"{at}.{keys[0]}.{part}.appendToPrompt must be text of at most 30,000 characters")
        prompts[part] = prompt
        given = inner.get("modelId")
        if given is not None and (not isinstance(given, str) or not 1 <= len(given) <= 2048):
            raise Invalid(f"{at}.{keys[0]}.{part}.modelId must be a model id (text)")
        model = model or given
    return _OVERRIDES[keys[0]], prompts["extraction"], prompts["consolidation"], model


def token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": offset})).decode()


def offset(next_token: str | None) -> int:
    """Where a page starts, from the token the previous page gave."""
    if not next_token:
        return 0
    try:
        found = orjson.loads(base64.urlsafe_b64decode(next_token.encode()))["o"]
        if isinstance(found, int) and found >= 0:
            return found
    except (ValueError, KeyError, TypeError):
        pass
    raise Invalid("nextToken is not one this service gave: pass the nextToken of the previous page, or none")


def page_size(value: Any, default: int = 20, most: int = 100) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise Invalid(f"maxResults must be a whole number from 1 to {most}, not {value!r}")
    return value


def modified(strategies: list[Strategy], item: Any, at: str, now: float) -> list[Strategy]:
    sid = item.get("memoryStrategyId") if isinstance(item, dict) else None
    found = next((s for s in strategies if s.strategy_id == sid), None)
    if found is None:
        raise NotFound(f"{at}.memoryStrategyId: the memory has no strategy {sid!r}")
    change: dict[str, Any] = {"updated_at": now}
    if "description" in item:
        change["description"] = item["description"]
    templates = item.get("namespaceTemplates") or item.get("namespaces")
    if templates:
        change["namespaces"] = [
            check_template(t, f"{at}.namespaceTemplates[{j}]") for j, t in enumerate(templates)
        ]
    expiry = (item.get("recordExpirySpecification") or {}).get("recordExpiryDurationDays")
    if expiry is not None:
        change["record_expiry_days"] = check_expiry(
            expiry, f"{at}.recordExpirySpecification.recordExpiryDurationDays"
        )
    config = item.get("configuration") or {}
    for part, field in (("extraction", "extraction_prompt"), ("consolidation", "consolidation_prompt")):
        step = config.get(part) or {}
        inner = (
            next((v for v in step.values() if isinstance(v, dict)), step) if isinstance(step, dict) else {}
        )
        inner = next((v for v in inner.values() if isinstance(v, dict)), inner)
        if "appendToPrompt" in inner:
            change[field] = inner["appendToPrompt"]
        if inner.get("modelId"):
            change["model_id"] = inner["modelId"]
    return [found.model_copy(update=change) if s is found else s for s in strategies]


def passages(text: str, most: int = 1500) -> list[str]:
    """Paragraphs, joined up to ``most`` characters; a longer paragraph split at sentences."""
    pieces: list[str] = []
    for para in (p.strip() for p in text.replace("\r\n", "\n").split("\n\n")):
        while len(para) > most:
            cut = para.rfind(". ", 0, most)
            cut = cut + 1 if cut > most // 3 else most
            pieces.append(para[:cut].strip())
            para = para[cut:].strip()
        if para:
            pieces.append(para)
    joined: list[str] = []
    for piece in pieces:
        if joined and len(joined[-1]) + len(piece) + 2 <= most:
            joined[-1] += "\n\n" + piece
        else:
            joined.append(piece)
    return joined


def memory_row(view: MemoryView, client_token: str | None) -> dict[str, Any]:
    body = {
        "description": view.description,
        "eventExpiryDays": view.event_expiry_days,
        "strategies": [s.model_dump() for s in view.strategies],
        "clientToken": client_token,
    }
    return {
        "id": view.id,
        "tenant": view.tenant,
        "name": view.name,
        "body": orjson.dumps(body).decode(),
        "created": view.created_at,
        "updated": view.updated_at,
    }


def memory_view(row: Any) -> MemoryView:
    body = orjson.loads(row.body)
    return MemoryView(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        description=body.get("description"),
        event_expiry_days=body["eventExpiryDays"],
        strategies=[Strategy(**s) for s in body["strategies"]],
        created_at=row.created,
        updated_at=row.updated,
    )
