"""Channel rounding shared by every width-scaled family."""

from __future__ import annotations


def make_divisible(
    value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9
) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never rounding down by more than 10%.

    This is the rule of the MobileNet reference code: round to the nearest multiple (halves
    up), at least ``min_value`` (default: ``divisor``); if that lost more than
    ``1 - round_limit`` of ``value``, add one more ``divisor``.

    >>> make_divisible(32 * 0.35)  # 11.2 -> 8 would lose 29%, so 16
    16
    >>> make_divisible(24 * 0.75)
    24
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded
