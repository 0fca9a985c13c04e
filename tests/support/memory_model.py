"""A scripted model for memory's extraction, served by `tests.support.model_server` on loopback.

Memory's prompts name their step on their first line (``memory-step: extract SEMANTIC``,
``memory-step: consolidate``, ...). `MemoryModel` answers each step from rules a test gives:
for extraction, the records to extract when a phrase occurs in the conversation; for
consolidation, a function that decides per candidate (by default: ADD when no existing record is
shown, else UPDATE the first one shown). Every request is kept with its step, so a test can say
which steps ran and what they were shown.

    brain = MemoryModel(facts={"Lisbon": ["The user lives in Lisbon."]})
    with serve_model(brain.script()) as model:
        ...  # ModelSettings(kind="openai", model="scripted", url=model.url + "/v1")
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.model_server import Reply, Text

Decide = Callable[[str, list[tuple[str, str]]], dict[str, Any]]
"""(candidate text, [(record id, text) shown]) -> one decision {action, recordId, text}."""


def update_first(candidate: str, existing: list[tuple[str, str]]) -> dict[str, Any]:
    if not existing:
        return {"action": "ADD", "recordId": None, "text": candidate}
    return {"action": "UPDATE", "recordId": existing[0][0], "text": candidate}


@dataclass
class MemoryModel:
    facts: Mapping[str, Sequence[str]] = field(default_factory=dict)
    preferences: Mapping[str, Sequence[str]] = field(default_factory=dict)
    episodes: Mapping[str, Sequence[dict[str, Any]]] = field(default_factory=dict)
    reflections: Sequence[str] = ()
    decide: Decide = update_first
    garbage: int = 0  # answer this many requests with text that is not JSON, first
    chat: Callable[[dict[str, Any]], Reply] | None = None  # requests that are not memory's (an agent's)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (step, system, user)

    def script(self, steps: int = 10_000) -> Iterator[Callable[[dict[str, Any]], Reply]]:
        return (self.reply for _ in range(steps))

    def steps(self, name: str) -> list[str]:
        """The user prompts of the requests for one step (e.g. ``"consolidate"``)."""
        return [user for step, _, user in self.seen if step == name]

    def reply(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        system = next((_text(m["content"]) for m in messages if m.get("role") == "system"), "")
        user = next((_text(m["content"]) for m in messages if m.get("role") == "user"), "")
        first = system.splitlines()[0] if system else ""
        if not first.startswith("memory-step: ") and self.chat is not None:
            self.seen.append(("chat", system, user))
            return self.chat(body)
        step = first.removeprefix("memory-step: ")
        self.seen.append((step, system, user))
        if self.garbage > 0:
            self.garbage -= 1
            return Text("Sure! Here is what I found: the user seems nice.")
        return Text(json.dumps(self._answer(step, user)))

    def _answer(self, step: str, user: str) -> dict[str, Any]:
        if step == "extract SEMANTIC":
            return {"facts": _found(self.facts, user)}
        if step == "extract USER_PREFERENCE":
            return {
                "preferences": [{"context": "chat", "preference": p} for p in _found(self.preferences, user)]
            }
        if step == "extract SUMMARIZATION":
            said = re.findall(r"^\[USER\] (.+)$", user, re.M)
            return {"summary": "The user talked about: " + "; ".join(said)}
        if step == "extract EPISODIC":
            return {"episodes": [e for key, found in self.episodes.items() if key in user for e in found]}
        if step == "reflect EPISODIC":
            return {"reflections": list(self.reflections)}
        if step == "consolidate":
            return {
                "decisions": [
                    {"candidate": i, **self.decide(text, existing)}
                    for i, (text, existing) in enumerate(_candidates(user))
                ]
            }
        raise AssertionError(f"memory asked an unknown step: {step!r}")


def _text(content: Any) -> str:
    """A message's text, whether a string or a list of content parts."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _found(rules: Mapping[str, Sequence[Any]], conversation: str) -> list[Any]:
    conversation = conversation.split("Conversation:", 1)[-1]
    return [item for phrase, items in rules.items() if phrase in conversation for item in items]


def _candidates(prompt: str) -> list[tuple[str, list[tuple[str, str]]]]:
    found: list[tuple[str, list[tuple[str, str]]]] = []
    for line in prompt.splitlines():
        if m := re.match(r"Candidate \d+: (.*)$", line):
            found.append((m.group(1), []))
        elif m := re.match(r"\s+existing recordId=(\S+): (.*)$", line):
            found[-1][1].append((m.group(1), m.group(2)))
    return found
