"""The CPU a benchmark ran on, as the libraries see it.

onnxruntime, numpy and OpenCV pick their kernels from the ``cpuid`` instruction: with AVX-512 VNNI
redactd's int8 face passes cost ~1.6x less than with AVX2 alone, so a speed figure means little
without this line. ``bench/avx2only.so`` (``make bench/avx2only.so``, then ``LD_PRELOAD``) hides
AVX-512 from them; the line says so when it is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path


def describe() -> str:
    """``"AMD EPYC, 2 CPUs; libraries see AVX2 (AVX-512 hidden by bench/avx2only.so)"``, or the like."""
    import numpy as np

    features: dict[str, bool] = np._core._multiarray_umath.__cpu_features__  # read from cpuid at import
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "unknown CPU")
    except OSError:
        model = "unknown CPU"
    if features.get("AVX512VNNI"):
        isa = "AVX-512 with VNNI"
    elif features.get("AVX512F"):
        isa = "AVX-512 without VNNI"
    elif features.get("AVX2"):
        isa = "AVX2, no AVX-512"
    else:
        isa = "no AVX2"
    hidden = " (AVX-512 hidden by bench/avx2only.so)" if "avx2only" in os.environ.get("LD_PRELOAD", "") else ""
    return f"{model}, {os.cpu_count()} CPUs; libraries see {isa}{hidden}"


if __name__ == "__main__":
    print(describe())
