"""What memory asks a model, per strategy, and the JSON it must answer (checked with pydantic).

Every prompt asks for one JSON object and nothing else; `ask_json` re-asks, quoting the
problem, when the answer does not parse or validate. The system prompt's first line names the
step (``memory-step: ...``) so a log, a trace or a scripted test model can tell the steps apart.
A custom strategy's ``appendToPrompt`` is added after the built-in instructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from memory._types import StrategyType


class Facts(BaseModel):
    facts: list[str] = Field(default_factory=list, max_length=50)


class Preferences(BaseModel):
    class Preference(BaseModel):
        context: str = ""
        preference: str
        categories: list[str] = Field(default_factory=list)

    preferences: list[Preference] = Field(default_factory=list, max_length=50)


class Summary(BaseModel):
    summary: str


class Episodes(BaseModel):
    class Episode(BaseModel):
        situation: str
        intent: str = ""
        actions: list[str] = Field(default_factory=list)
        outcome: str
        succeeded: bool | None = None
        lesson: str = ""

    episodes: list[Episode] = Field(default_factory=list, max_length=20)


class Reflections(BaseModel):
    reflections: list[str] = Field(default_factory=list, max_length=20)


class Decisions(BaseModel):
    class Decision(BaseModel):
        candidate: int
        action: Literal["ADD", "UPDATE", "SKIP", "DELETE"]
        record_id: str | None = Field(default=None, alias="recordId")
        text: str | None = None

        model_config = {"populate_by_name": True}

    decisions: list[Decision]


_COMMON = (
    "You turn a conversation into long-term memory records for an AI agent. Use only what the "
    "conversation says; never invent. Write each record as one self-contained sentence in the third "
    'person about the user ("The user ..."), in the conversation\'s language. Answer with one JSON '
    "object and nothing else."
)

EXTRACTION: dict[StrategyType, tuple[str, type[BaseModel]]] = {
    "SEMANTIC": (
        "memory-step: extract SEMANTIC\n" + _COMMON + "\nExtract lasting facts: about the user, their "
        "world, their work, decisions made, and knowledge stated as true. Skip greetings, small talk, "
        "questions, and what only matters for this moment. "
        'Answer {"facts": ["...", ...]}; an empty list when there is nothing worth keeping.',
        Facts,
    ),
    "USER_PREFERENCE": (
        "memory-step: extract USER_PREFERENCE\n" + _COMMON + "\nExtract the user's preferences: likes, "
        "dislikes, habits, and how they want things done, stated or clearly shown. Skip one-off requests. "
        'Answer {"preferences": [{"context": "where it came up", "preference": "The user prefers ...", '
        '"categories": ["food", ...]}, ...]}.',
        Preferences,
    ),
    "SUMMARIZATION": (
        "memory-step: extract SUMMARIZATION\n" + _COMMON + "\nSummarise the session so far: the user's "
        "goals, what was discussed and decided, open questions, in at most 200 words. If an earlier "
        'summary is given, fold the new turns into it. Answer {"summary": "..."}.',
        Summary,
    ),
    "EPISODIC": (
        "memory-step: extract EPISODIC\n" + _COMMON + "\nFind the episodes: each task the agent tried "
        "for the user, what the situation and intent were, the actions taken (tools called), how it "
        "ended, whether it succeeded, and the lesson for next time. "
        'Answer {"episodes": [{"situation": "...", "intent": "...", "actions": ["..."], "outcome": "...", '
        '"succeeded": true, "lesson": "..."}, ...]}.',
        Episodes,
    ),
}

REFLECTION = (
    "memory-step: reflect EPISODIC\nYou study an AI agent's past episodes (what it tried and how it "
    "ended) and write reflections: general lessons that would help it next time in similar "
    "situations, each one self-contained sentence. Do not repeat an existing reflection. Answer with "
    'one JSON object and nothing else: {"reflections": ["...", ...]}.'
)

CONSOLIDATION = (
    "memory-step: consolidate\nYou keep an AI agent's long-term memory free of duplicates and "
    "contradictions. For each numbered candidate, compare it with the existing records listed under "
    "it and decide one action:\n"
    "- ADD: it is new information; give its text.\n"
    "- UPDATE: it refines or changes an existing record (a newer fact wins over an older one); give "
    "that record's recordId and the merged text.\n"
    "- SKIP: an existing record already says it.\n"
    "- DELETE: it shows an existing record is no longer true and there is nothing new to keep; give "
    "that recordId.\n"
    'Answer with one JSON object and nothing else: {"decisions": [{"candidate": 0, "action": "ADD", '
    '"recordId": null, "text": "..."}, ...]}, one decision per candidate.'
)


def conversation(turns: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"[{role}] {text}" for role, text in turns)


def extraction_prompt(turns: Sequence[tuple[str, str]], previous: str | None = None) -> str:
    parts = []
    if previous:
        parts.append(f"Earlier summary of this session:\n{previous}\n")
    parts.append(f"Conversation:\n{conversation(turns)}")
    return "\n".join(parts)


def consolidation_prompt(candidates: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """``candidates``: each new text with the (record id, text) of the existing records like it."""
    lines = []
    for i, (text, existing) in enumerate(candidates):
        lines.append(f"Candidate {i}: {text}")
        if existing:
            lines.extend(f"  existing recordId={rid}: {old}" for rid, old in existing)
        else:
            lines.append("  (no similar existing records)")
    return "\n".join(lines)


def reflection_prompt(episodes: Sequence[str], existing: Sequence[str]) -> str:
    lines = ["New episodes:"] + [f"- {e}" for e in episodes]
    if existing:
        lines += ["Existing reflections:"] + [f"- {r}" for r in existing]
    return "\n".join(lines)


def with_custom(system: str, extra: str | None) -> str:
    return system if not extra else f"{system}\n\nAdditional instructions from the operator:\n{extra}"


def episode_text(episode: Episodes.Episode) -> str:
    ended = {True: "succeeded", False: "failed", None: "ended"}[episode.succeeded]
    steps = "; ".join(episode.actions)
    text = f"Situation: {episode.situation}."
    if episode.intent:
        text += f" Intent: {episode.intent}."
    if steps:
        text += f" Actions: {steps}."
    text += f" Outcome ({ended}): {episode.outcome}."
    if episode.lesson:
        text += f" Lesson: {episode.lesson}"
    return text
