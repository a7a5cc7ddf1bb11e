"""A predictor served over pipes, in a process with nothing but its runtime.

    python -m quantkit.targets.worker ARTIFACT_DIR

Run by quantkit.targets.side_runtime inside a side environment (Paddle Lite on CPython
3.10, Paddle 3), from the runner kit. Frames on stdin/stdout are an 8-byte big-endian
length and a payload. The first request is JSON {"record": the artifact record (backend,
files, settings), "threads": N or null} (the artifact may not be saved yet); the answer
is a ready frame (b"r" + JSON of the input names) or an error frame (b"e" + message).
Then each request is an npz of the feeds, answered by b"o" + npz of the outputs in
order, or b"e" + message. EOF on stdin ends it. Whatever the runtime prints
goes to stderr, so stdout carries only frames.
"""
from __future__ import annotations

import io
import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

LENGTH_BYTES = 8


def write_frame(stream, payload: bytes) -> None:
    stream.write(len(payload).to_bytes(LENGTH_BYTES, "big") + payload)
    stream.flush()


def read_frame(stream) -> bytes | None:
    """The next payload, or None at a clean EOF."""
    header = stream.read(LENGTH_BYTES)
    if not header:
        return None
    if len(header) != LENGTH_BYTES:
        raise EOFError("truncated frame header")
    size = int.from_bytes(header, "big")
    payload = stream.read(size)
    if len(payload) != size:
        raise EOFError(f"truncated frame: {len(payload)} of {size} bytes")
    return payload


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unpack_arrays(payload: bytes) -> dict[str, np.ndarray]:
    """The arrays of a packed frame, in the order they were packed."""
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _error(exc: BaseException) -> bytes:
    from quantkit.errors import QuantkitError

    text = str(exc) if isinstance(exc, QuantkitError) else f"{type(exc).__name__}: {exc}"
    return b"e" + text.encode()


def serve(artifact_dir: Path) -> int:
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # native prints to fd 1 must not corrupt the frames
    sys.stdout = sys.stderr
    frames_in = sys.stdin.buffer
    from quantkit.errors import QuantkitError
    from quantkit.targets.standalone import open_standalone

    opening = read_frame(frames_in)
    if opening is None:
        return 0
    try:
        request = json.loads(opening)
        predictor = open_standalone(artifact_dir, request["record"], request["threads"])
    except QuantkitError as exc:
        write_frame(frames_out, b"e" + str(exc).encode())
        return 1
    write_frame(frames_out, b"r" + json.dumps(list(predictor.input_names)).encode())
    while True:
        payload = read_frame(frames_in)
        if payload is None:
            return 0
        try:
            outputs = predictor.run(unpack_arrays(payload))
            reply = b"o" + pack_arrays({f"out{index:04d}": np.asarray(value)
                                        for index, value in enumerate(outputs)})
        except Exception as exc:  # noqa: BLE001 - a bad request is an answer, not a crash
            print(traceback.format_exc(limit=3), file=sys.stderr)
            reply = _error(exc)
        write_frame(frames_out, reply)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m quantkit.targets.worker ARTIFACT_DIR", file=sys.stderr)
        return 2
    return serve(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
