"""Request bodies to checked model inputs, or a 4xx error saying exactly what is wrong.

Pure functions over bytes and feed specs (no web framework), so every refusal is
unit-testable and a bad request can never reach the predictor.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from quantkit.data.feeds import FeedError, FeedSpec, check_feeds, check_names

JSON_TYPE = "application/json"
NPY_TYPE = "application/x-npy"
BODY_KEYS = ("inputs",)
_NUMERIC_KINDS = "iuf"


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ParsedRequest:
    """Inputs cast to the model's dtypes, in the model's feed order, and the batch size."""

    inputs: dict[str, np.ndarray]
    rows: int


def media_type(header: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json` (lower case)."""
    return (header or "").split(";", 1)[0].strip().lower()


def parse_request(body: bytes, content_type: str | None, feeds: Sequence[FeedSpec],
                  max_rows: int) -> ParsedRequest:
    """Decode a JSON or .npy body and check it against the model's inputs."""
    media = media_type(content_type)
    if media == JSON_TYPE:
        raw = _json_inputs(body, feeds)
    elif media == NPY_TYPE:
        raw = _npy_inputs(body, feeds)
    else:
        shown = f"Content-Type {media!r}" if media else "no Content-Type"
        raise RequestError(415, f"{shown} is not supported: send {JSON_TYPE} "
                                f"({{\"inputs\": {{...}}}}) or {NPY_TYPE} (one array)")
    return check_inputs(raw, feeds, max_rows)


def response_type(accept: str | None) -> str:
    """JSON unless the client asks for .npy; 406 when it accepts neither."""
    if not accept:
        return JSON_TYPE
    kinds = [media_type(part) for part in accept.split(",")]
    if NPY_TYPE in kinds:
        return NPY_TYPE
    if any(kind in (JSON_TYPE, "application/*", "*/*") for kind in kinds):
        return JSON_TYPE
    raise RequestError(406, f"cannot answer in {accept!r}: this server answers in {JSON_TYPE} "
                            f"or {NPY_TYPE}")


def check_inputs(raw: Mapping[str, np.ndarray], feeds: Sequence[FeedSpec],
                 max_rows: int) -> ParsedRequest:
    """Names, emptiness, then the data layer's one set of input rules, then the row limit."""
    try:
        check_names(list(raw), feeds, "")
        for feed in feeds:
            array = np.asarray(raw[feed.name])
            if array.ndim >= 1 and array.shape[0] == 0:
                raise RequestError(422, f"empty batch: input '{feed.name}' has 0 rows; send at "
                                        "least one")
        inputs = check_feeds(raw, feeds, "", fixed_batch=True)
    except FeedError as exc:
        raise RequestError(422, str(exc)) from None
    rows = next(iter(inputs.values())).shape[0] if inputs else 1
    if rows > max_rows:
        raise RequestError(413, f"batch of {rows} rows is above this server's limit of "
                                f"{max_rows} (--max-batch): split the request")
    return ParsedRequest(inputs, int(rows))


# --- JSON bodies ------------------------------------------------------------------------

def _json_inputs(body: bytes, feeds: Sequence[FeedSpec]) -> dict[str, np.ndarray]:
    if not body.strip():
        raise RequestError(400, "empty body: send JSON {\"inputs\": {\"<name>\": [...]}}")
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "body is not valid JSON: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}") from None
    except RecursionError:
        raise RequestError(400, "body is not valid JSON here: nested too deeply") from None
    if not isinstance(document, dict):
        raise RequestError(422, f"the JSON body is a {_json_type(document)}; send an object "
                                "{\"inputs\": {\"<name>\": [...]}}")
    unknown = [key for key in document if key not in BODY_KEYS]
    if unknown:
        raise RequestError(422, f"unknown key {', '.join(repr(k) for k in unknown)} in the body "
                                "(expected only \"inputs\")")
    if "inputs" not in document:
        raise RequestError(422, "the body has no \"inputs\" key: send {\"inputs\": "
                                "{\"<name>\": [...]}}")
    given = document["inputs"]
    names = [feed.name for feed in feeds]
    if isinstance(given, list):
        if len(feeds) != 1:
            raise RequestError(422, f"this model takes {len(feeds)} inputs ({', '.join(names)}):"
                                    " send \"inputs\" as an object keyed by input name")
        given = {names[0]: given}
    elif not isinstance(given, dict):
        raise RequestError(422, f"\"inputs\" is a {_json_type(given)}; send an object keyed by "
                                f"input name ({', '.join(names)})")
    may_hold_bools = b"true" in body or b"false" in body
    return {name: _json_array(name, value, may_hold_bools) for name, value in given.items()}


def _json_array(name: str, value: Any, may_hold_bools: bool) -> np.ndarray:
    if isinstance(value, (dict, str)) or value is None:
        raise RequestError(422, f"input '{name}' is a {_json_type(value)}; send nested lists "
                                "of numbers")
    try:
        array = np.array(value)
    except (ValueError, TypeError):
        raise RequestError(422, f"input '{name}' is not a rectangular array: its rows have "
                                "different lengths or mix numbers and lists") from None
    # numpy turns [true, 2.5] into [1.0, 2.5]: look for bools only when the body has any.
    if array.dtype.kind in _NUMERIC_KINDS and may_hold_bools and _holds_bool(value):
        raise RequestError(422, f"input '{name}' holds true/false values; send numbers")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise RequestError(422, f"input '{name}' holds NaN or infinite values: send finite "
                                "numbers")
    return array


def _holds_bool(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            return True
        if isinstance(item, list):
            stack.extend(item)
    return False


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "true/false", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- .npy bodies ------------------------------------------------------------------------

def _npy_inputs(body: bytes, feeds: Sequence[FeedSpec]) -> dict[str, np.ndarray]:
    if len(feeds) != 1:
        names = ", ".join(feed.name for feed in feeds)
        raise RequestError(422, f"a .npy body holds one array and this model takes {len(feeds)}"
                                f" inputs ({names}): send JSON {{\"inputs\": {{...}}}} instead")
    return {feeds[0].name: read_npy(body)}


def read_npy(body: bytes) -> np.ndarray:
    """The array in a .npy body, after checking its header agrees with its length.

    np.load allocates the array its header declares before reading any data, so a forged
    100-byte body claiming a terabyte array is refused here instead; and with the header
    checked, the data is taken with one copy (np.load would parse the header again).
    """
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise RequestError(400, f"unsupported .npy format version {version[0]}.{version[1]}"
                                    ": save with numpy.save (version 1.0)")
    except RequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError or others on junk
        raise RequestError(400, f"body is not a valid .npy file: {exc}") from None
    if dtype.hasobject:
        raise RequestError(422, "the .npy array holds Python objects; send a numeric array")
    expected = math.prod(shape) * dtype.itemsize
    present = len(body) - stream.tell()
    if present != expected:
        raise RequestError(400, f"the .npy header declares shape {list(shape)} of {dtype.name} "
                                f"({expected} bytes) but the body holds {present} bytes of data")
    if dtype.itemsize == 0:
        raise RequestError(422, f"the .npy array has the empty dtype {dtype.str}; send numbers")
    flat = np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran else "C").copy()
