"""Measuring a model: parameters, MACs, and (see profiler) latency across runtimes."""

from pocketvision.profile.counting import count_macs, count_params

__all__ = ["count_macs", "count_params"]
