"""Run Paddle code that needs static-graph mode, whatever mode the caller is in."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def static_mode():
    """Static-graph mode for the block, restoring dygraph if that is what the caller used."""
    import paddle

    was_dynamic = paddle.in_dynamic_mode()
    if was_dynamic:
        paddle.enable_static()
    try:
        yield
    finally:
        if was_dynamic:
            paddle.disable_static()
