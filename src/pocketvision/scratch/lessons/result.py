"""What every lesson returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Log = Callable[[str], None]


@dataclass
class LessonResult:
    """The figure a lesson wrote and the numbers it measured (also printed as it ran)."""

    figure: Path
    numbers: dict[str, float] = field(default_factory=dict)
