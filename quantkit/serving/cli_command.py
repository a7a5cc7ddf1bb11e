"""`quantkit serve BUNDLE`: the click command, registered by quantkit.cli.

Thin: parses options (defaults read from ServeSettings) and calls `serve`.
"""
from __future__ import annotations

from pathlib import Path

import click

from quantkit.cli_types import MAX_BATCH, POSITIVE, FiniteNumber, WholeNumber
from quantkit.errors import user_errors
from quantkit.serving.server import DEFAULT_HOST, DEFAULT_PORT
from quantkit.serving.settings import DEFAULTS, MIB

DEFAULT_BODY_MB = DEFAULTS.max_body_bytes / MIB


@click.command("serve")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=WholeNumber(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="TCP port (0: any free port).")
@click.option("--workers", type=POSITIVE, default=None,
              help="Predictors serving in parallel, each one request at a time "
                   "[default: CPUs / --threads].")
@click.option("--max-batch", type=WholeNumber(1, MAX_BATCH), default=DEFAULTS.max_batch,
              show_default=True,
              help="Most rows per model run: larger requests are refused (413), dynamic "
                   "batches stop here.")
@click.option("--max-wait-ms", type=FiniteNumber(0.0, high=10_000.0), default=None,
              help="Turn on dynamic batching: merge concurrent requests arriving within "
                   "this many ms (0: only those already queued) [default: off].")
@click.option("--max-body-mb", type=FiniteNumber(0.0, strict=True), default=DEFAULT_BODY_MB,
              show_default=True,
              help="Largest request body in MiB (413 above).")
@click.option("--threads", type=POSITIVE, default=None,
              help="Threads per predictor [default: the target profile's].")
@click.option("--no-access-log", is_flag=True, help="Do not log every request.")
def serve_command(bundle, host, port, workers, max_batch, max_wait_ms, max_body_mb, threads,
                  no_access_log) -> None:
    """Serve BUNDLE (a release bundle or an artifact folder) over HTTP.

    POST /v1/predict with {"inputs": {"<name>": [...]}} (or an .npy body), GET /v1/health,
    GET /v1/metadata.
    """
    from quantkit.serving.server import serve

    with user_errors():
        serve(bundle, host=host, port=port, workers=workers, max_batch=max_batch,
              max_wait_ms=max_wait_ms, max_body_bytes=int(max_body_mb * MIB),
              threads=threads, access_log=not no_access_log)
