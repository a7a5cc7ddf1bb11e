"""JSON records on disk (artifact.json, run.json, results.json, manifest.json, ...).

Read with a one-line refusal naming the file; written whole or not at all, with NaN and
Infinity (not JSON) stored as null.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from quantkit.atomic import write_text_atomic
from quantkit.errors import QuantkitError


def read_json(path: Path, what: str) -> Any:
    """A JSON file's content, or a QuantkitError naming the file and what is wrong."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QuantkitError(f"{what} missing: {path}") from None
    except IsADirectoryError:
        raise QuantkitError(f"{what} {path} is a folder, not a JSON file") from None
    except OSError as exc:
        raise QuantkitError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuantkitError(f"{what} {path} is not valid JSON ({exc})") from None


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (NaN/Infinity are not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def write_json(path: Path, record: Any) -> Path:
    """Write `record` as indented JSON, atomically."""
    return write_text_atomic(Path(path), json.dumps(finite_json(record), indent=2,
                                                    allow_nan=False) + "\n")
