"""Serving: one model (a release bundle or an artifact folder) behind an HTTP API.

`serve(path)` is the blocking entry point (`quantkit serve`); `create_app(source,
settings)` gives the FastAPI app for embedding. Names load on first use, so importing
this package pulls in neither FastAPI nor Paddle.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ServeSettings": "quantkit.serving.settings",
    "ModelSource": "quantkit.serving.source",
    "source_from_path": "quantkit.serving.source",
    "create_app": "quantkit.serving.app",
    "serve": "quantkit.serving.server",
    "ServerThread": "quantkit.serving.server",
    "bind_socket": "quantkit.serving.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'quantkit.serving' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
