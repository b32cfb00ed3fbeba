"""Budget-aware model search on Optuna: the most accurate model under a size and latency
budget on a chosen deploy runtime (README "Model search").

>>> from pocketvision.search import search
>>> result = search("digits", models="lenet5,mobilenet_v1*", max_params=100_000, trials=10)
>>> result.best["run_dir"]

Heavy imports (Optuna, torch) happen when :func:`search` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pocketvision.search.runner import SearchResult, search

__all__ = ["SearchResult", "search"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pocketvision.search import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'pocketvision.search' has no attribute {name!r}")
