"""î(ξ): the fused C++ encoder kernel (:mod:`.kernel`) and its measured latency over a space, cached
(:mod:`.latency`), and as a ratio to the teacher timed in alternating rounds (:mod:`.relative`: what the search
uses)."""

from bortfast.profile.kernel import EncoderKernel, default_threads
from bortfast.profile.latency import (
    CACHE_FILE,
    LatencyStats,
    cache_key,
    cpu_model,
    kernel_version,
    measure_latency,
    profile_space,
    profile_stats,
)
from bortfast.profile.relative import RelativeLatency, relative_profile

__all__ = ["CACHE_FILE", "EncoderKernel", "LatencyStats", "cache_key", "cpu_model", "default_threads",
           "kernel_version", "measure_latency", "profile_space", "profile_stats", "RelativeLatency", "relative_profile"]
