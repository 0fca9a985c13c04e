"""The process's memory service (ADR 0045): built from the settings, on the store's database.

Memory keeps its tables beside the store's (same database, its own migrations), so one
PostgreSQL serves every replica's memory, and each replica's search index follows the others'
writes. The model that extracts records and the embeddings are the operator's settings:
``SWITCHBOARD_MEMORY_MODEL`` (``openai:``, ``bedrock:`` or ``anthropic:`` and a model id), its URL
and the environment variable holding its key; embeddings are computed locally unless
``SWITCHBOARD_MEMORY_EMBEDDINGS_URL`` names an API.
"""

from __future__ import annotations

import os

from gateway.core.errors import ConfigError
from gateway.settings import Settings
from gateway.store import Store
from memory import ApiEmbedder, Embedder, LocalEmbedder, MemoryService, ModelSettings

KINDS = ("openai", "bedrock", "anthropic")


def model_settings(settings: Settings) -> ModelSettings | None:
    """The extraction model the operator configured, or None.

    Raises:
        ConfigError: The setting is not ``KIND:MODEL_ID``, or its key's variable is unset.
    """
    spec = settings.memory_model
    if not spec:
        return None
    kind, _, model = spec.partition(":")
    if kind not in KINDS or not model:
        raise ConfigError(
            f"SWITCHBOARD_MEMORY_MODEL={spec!r} is not KIND:MODEL_ID with KIND one of {', '.join(KINDS)} "
            "(e.g. openai:gpt-4o-mini, bedrock:anthropic.claude-3-5-haiku-20241022-v1:0, "
            "anthropic:claude-haiku-4-5)"
        )
    if kind == "openai" and not settings.memory_model_url:
        raise ConfigError(
            "SWITCHBOARD_MEMORY_MODEL is an openai: model, and SWITCHBOARD_MEMORY_MODEL_URL is not set: give "
            "the API's base URL (for example http://127.0.0.1:11434/v1 or https://api.openai.com/v1)"
        )
    key = _env(settings.memory_model_key_env, "SWITCHBOARD_MEMORY_MODEL_KEY_ENV")
    return ModelSettings(
        kind=kind,  # type: ignore[arg-type]
        model=model,
        url=settings.memory_model_url,
        api_key=key,
        region=settings.memory_model_region,
        timeout=settings.memory_model_timeout,
    )


def embedder(settings: Settings) -> Embedder:
    if settings.memory_embeddings_url:
        key = _env(settings.memory_embeddings_key_env, "SWITCHBOARD_MEMORY_EMBEDDINGS_KEY_ENV")
        return ApiEmbedder(
            settings.memory_embeddings_url,
            settings.memory_embeddings_model,
            settings.memory_embeddings_dim,
            api_key=key,
        )
    return LocalEmbedder(cache_dir=settings.data_dir / "cache")


def _env(name: str | None, setting: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{setting} names the environment variable {name}, which is not set")
    return value


async def open_memory(settings: Settings, store: Store, embeddings: Embedder | None = None) -> MemoryService:
    """The memory service on the store's database, its tables migrated (``embeddings``: the
    process's embedder, when it shares one; else the settings' own)."""
    service = MemoryService(
        store.engine,
        embeddings or embedder(settings),
        model=model_settings(settings),
        model_choices=settings.memory_model_choices,
        write_options=store.write_options,
        window=settings.memory_batch_seconds,
    )
    await service.open()
    return service
