"""quantkit: Paddle models to device-ready INT8, with measured latency, size and accuracy.

`import quantkit as slim` gives PaddleSlim's faces (`slim.models.MobileNet`,
`slim.quant.quant_post_static`). Submodules load on first use, so `quantkit --help`
does not pay for importing Paddle.
"""
from __future__ import annotations

import importlib
import sys

# Paddle's core library carries its own zlib. Python's `zlib` module imported *after*
# Paddle binds to that copy and segfaults (inflateReset2); imported before, it is safe.
ZLIB_BOUND_BEFORE_PADDLE = "paddle" not in sys.modules
if ZLIB_BOUND_BEFORE_PADDLE:
    import zlib  # noqa: F401

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("models", "quant", "datasets", "calibration")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"quantkit.{name}")
    raise AttributeError(f"module 'quantkit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY_SUBMODULES))
