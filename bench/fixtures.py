"""Functions the benchmarks serve."""

from __future__ import annotations


async def echo(text: str, n: int = 0) -> dict[str, object]:
    """Return the arguments."""
    return {"text": text, "n": n}
