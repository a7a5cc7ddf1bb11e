"""The HTTP API over one model: `POST /v1/predict`, `GET /v1/health`, `GET /v1/metadata`.

`create_app` opens the predictor pool before returning, so a model that cannot run fails
at startup with a QuantkitError instead of on the first request. Bad input is always a
4xx with {"error": "..."}; a failing model is a 500 and the server keeps serving.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from starlette.exceptions import HTTPException as StarletteHTTPException

from quantkit.errors import QuantkitError
from quantkit.serving.batching import DynamicBatcher, fixed_batch_reason
from quantkit.serving.pool import PredictorPool
from quantkit.serving.settings import ServeSettings
from quantkit.serving.source import ModelSource
from quantkit.serving.validation import (JSON_TYPE, NPY_TYPE, RequestError, parse_request,
                                         response_type)

PARSE_INLINE_BYTES = 256 * 1024
ROUTES = "POST /v1/predict, GET /v1/health, GET /v1/metadata"
# uvicorn configures this logger, so our lines come out in its format and stream.
log = logging.getLogger("uvicorn.error")


@dataclass
class RequestCounts:
    """Outcomes of /v1/predict. Only the event loop thread updates them: no lock."""

    served: int = 0  # answered with a prediction
    rejected: int = 0  # 4xx: the request was wrong
    errors: int = 0  # 5xx: the model failed


def create_app(source: ModelSource, settings: ServeSettings) -> FastAPI:
    """An app serving `source` with `settings.workers` predictors, opened (and warmed up) now."""
    reason = fixed_batch_reason(source.feeds)
    if settings.batching and reason is not None:
        raise QuantkitError(f"dynamic batching (max_wait_ms / --max-wait-ms) needs a dynamic "
                            f"batch axis and {reason}: leave batching off for this model")
    pool = PredictorPool(source.open_predictor, settings.workers, warmup=_warmup(source),
                         name=source.name)
    batcher = (DynamicBatcher(pool.run, settings.max_batch, settings.max_wait_ms)
               if settings.batching else None)
    counts = RequestCounts()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title=f"quantkit: {source.name}", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.pool = pool
    app.state.counts = counts

    @app.exception_handler(StarletteHTTPException)
    async def route_errors(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path} (this server has: {ROUTES})"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = (f"{request.method} is not allowed on {request.url.path} (use "
                       f"{allowed or 'another method'})")
        else:
            message = str(exc.detail)
        return _error(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        counts.errors += 1
        return _error(500, f"internal error: {_brief(exc)}")

    @app.post("/v1/predict")
    async def predict(request: Request) -> Response:
        try:
            answer_as = response_type(request.headers.get("accept"))
            body = await read_body(request, settings.max_body_bytes)
            parse = functools.partial(parse_request, body, request.headers.get("content-type"),
                                      source.feeds, settings.max_batch)
            # Decoding megabytes of JSON takes tens of ms: off the event loop, which keeps
            # serving health checks and small requests meanwhile.
            parsed = parse() if len(body) < PARSE_INLINE_BYTES else await asyncio.to_thread(parse)
            if answer_as == NPY_TYPE and pool.output_count not in (None, 1):
                raise RequestError(406, f"the model has {pool.output_count} outputs and a .npy "
                                        f"answer holds one: ask for {JSON_TYPE}")
        except RequestError as exc:
            counts.rejected += 1
            return _error(exc.status, exc.message)
        try:
            if batcher is not None:
                outputs = await batcher.run(parsed.inputs, parsed.rows)
            else:
                outputs = await pool.run(parsed.inputs)
            response = _encode(outputs, answer_as, parsed.rows, source.name)
        except RequestError as exc:
            counts.rejected += 1
            return _error(exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001 - the model failed, the server stays up
            counts.errors += 1
            log.exception("prediction failed on %s", source.name)
            return _error(500, f"the model failed on this request: {_brief(exc)}")
        counts.served += 1
        return response

    @app.get("/v1/health")
    async def health() -> Response:
        pool_stats = pool.stats()
        status = "ok" if pool_stats["workers_alive"] == pool.size else "degraded"
        return _json({"status": status, "model": source.name, **pool_stats,
                      "requests": counts.served, "rejected": counts.rejected,
                      "errors": counts.errors,
                      "batching": batcher.stats() if batcher else {"enabled": False}},
                     status=200 if status == "ok" else 503)

    metadata = _metadata(source, settings, pool.output_count, reason)

    @app.get("/v1/metadata")
    async def describe() -> Response:
        return _json(metadata)

    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed `limit` bytes.

    Content-Length is checked before reading anything; the stream is capped too, since
    a chunked body has no length and a client may lie about it.
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise RequestError(415, f"Content-Encoding {encoding!r} is not supported: send the "
                                "body uncompressed")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestError(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise RequestError(413, f"body of {int(declared)} bytes is above this server's "
                                    f"limit of {limit} bytes (--max-body-mb): send fewer rows "
                                    "per request")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"body is above this server's limit of {limit} bytes "
                                        "(--max-body-mb): send fewer rows per request")
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody will read this answer; it only keeps the disconnect out of the error count.
        raise RequestError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def _encode(outputs: list[np.ndarray], media: str, rows: int, model: str) -> Response:
    if media == NPY_TYPE:
        if len(outputs) != 1:
            raise RequestError(406, f"the model has {len(outputs)} outputs and a .npy answer "
                                    f"holds one: ask for {JSON_TYPE}")
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(outputs[0]), allow_pickle=False)
        return Response(buffer.getvalue(), media_type=NPY_TYPE,
                        headers={"X-Quantkit-Model": model, "X-Quantkit-Batch": str(rows)})
    if not all(np.isfinite(output).all() for output in outputs):
        # The inputs were valid numbers but so large that the model's arithmetic overflowed:
        # a request the model cannot answer in JSON, not a failure of the server.
        raise RequestError(422, "the model's outputs overflowed to NaN or Inf on these inputs "
                                "(inputs far outside what the model was trained on?): send "
                                f"inputs in the model's range, or ask for {NPY_TYPE} to get "
                                "the outputs as they are")
    return _json({"outputs": [output.tolist() for output in outputs], "batch": rows,
                  "model": model})


def _metadata(source: ModelSource, settings: ServeSettings, output_count: int | None,
              fixed_batch: str | None) -> dict[str, Any]:
    return {
        "model": source.name,
        **source.metadata,
        "inputs": [{"name": feed.name, "shape": list(feed.shape), "dtype": feed.dtype}
                   for feed in source.feeds],
        "output_count": output_count,
        "server": {**settings.to_dict(),
                   "dynamic_batch_axis": fixed_batch is None,
                   "request_types": [JSON_TYPE, NPY_TYPE]},
    }


def _warmup(source: ModelSource) -> dict[str, np.ndarray] | None:
    """One synthetic row per input, when every non-batch dim is known: opens lazily
    initialised kernels before the first client pays for them, and counts the outputs."""
    from quantkit.data.synthetic import synthetic_inputs

    if any(not feed.shape for feed in source.feeds):
        return None
    fixed = [feed.shape[0] for feed in source.feeds if feed.shape[0] > 0]
    try:
        return synthetic_inputs(source.feeds, rows=fixed[0] if fixed else 1)
    except QuantkitError:
        return None  # dynamic non-batch dims: no shape to invent


def _brief(exc: BaseException, limit: int = 400) -> str:
    """The exception for a client: Paddle's carry pages of C++ stack, which go to the log."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[:limit] + " ... (the server log has the rest)"
    return f"{type(exc).__name__}: {text}"


def _json(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    content = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type=JSON_TYPE, headers=headers)


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"error": message}, status=status, headers=headers)
