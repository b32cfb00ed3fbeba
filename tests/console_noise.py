"""What other libraries print that must not reach a pocketvision user's console (issue 12,
item 6): the lines seen on a fresh export or profile before the console was made quiet."""

from __future__ import annotations

import re

NOISE = [
    r"torchvision is not installed",
    r"Failed to load",
    r"has not been tested with coremltools",
    r"is not supported\. Minimum required version",
    r"Running MIL .* pipeline",
    r"Converting PyTorch Frontend",
    r"FutureWarning",
    r"DeprecationWarning",
    r"torch/utils/_pytree\.py",
    r"threadpool\.cpp",
    r"cpuinfo_utils\.cpp",
    r"XNNPACK delegate for CPU",
    r"absl::InitializeLog",
    r"^W\d{4} ",
    r"^I\d{4} ",
    r"WARNING:root:",
]


def noise(text: str) -> list[str]:
    """The lines of ``text`` that are another library's noise."""
    return [line for line in text.splitlines() if any(re.search(p, line) for p in NOISE)]
