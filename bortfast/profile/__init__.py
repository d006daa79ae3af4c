"""î(ξ): the fused C++ encoder kernel (:mod:`.kernel`) and its measured latency over a space, cached
(:mod:`.latency`)."""

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

__all__ = ["CACHE_FILE", "EncoderKernel", "LatencyStats", "cache_key", "cpu_model", "default_threads",
           "kernel_version", "measure_latency", "profile_space", "profile_stats"]
