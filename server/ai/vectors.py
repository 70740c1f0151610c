"""Vector arithmetic for semantic ranking (no provider needed)."""

from __future__ import annotations

import math


def normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def cosine(a: list[float] | None, b: list[float] | None) -> float:
    """Of two unit vectors (0 when either is missing or sizes differ)."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=False))
