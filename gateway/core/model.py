"""The base of every configuration model, and the name rule."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="Letters, digits, '-' and '_' (max 63).")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
