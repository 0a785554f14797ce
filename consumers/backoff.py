"""Retry timing: pure functions (classification lives in `consumers.classify`)."""

from __future__ import annotations

import math
import random
from typing import Final

MAX_VISIBILITY_SECONDS: Final = 43_200


def visibility_backoff(
    receive_count: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> int:
    """Seconds until the next receive: full jitter over min(cap, base * 2**(count-1)).

    The attempt number comes from ApproximateReceiveCount, not process memory,
    so the backoff keeps growing across worker restarts.
    """
    exponent = max(0, receive_count - 1)
    ceiling = min(cap, base * 2.0 ** min(exponent, 60))
    jittered = (rng or random).uniform(0, ceiling)
    return clamp_visibility(jittered)


def clamp_visibility(seconds: float) -> int:
    return max(0, min(MAX_VISIBILITY_SECONDS, math.ceil(seconds)))
