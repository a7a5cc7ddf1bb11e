"""`quantkit serve BUNDLE`: the click command, registered by quantkit.cli.

Thin: parses options (defaults read from ServeSettings) and calls `serve`.
"""
from __future__ import annotations

from pathlib import Path

import click

from quantkit.errors import QuantkitError, user_errors
from quantkit.serving.server import DEFAULT_HOST, DEFAULT_PORT
from quantkit.serving.settings import DEFAULTS, MIB

DEFAULT_BODY_MB = DEFAULTS.max_body_bytes / MIB


@click.command("serve")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="TCP port.")
@click.option("--workers", type=int, default=None,
              help="Predictors serving in parallel, each one request at a time "
                   "[default: CPUs / --threads].")
@click.option("--max-batch", type=int, default=DEFAULTS.max_batch, show_default=True,
              help="Most rows per model run: larger requests are refused (413), dynamic "
                   "batches stop here.")
@click.option("--max-wait-ms", type=float, default=None,
              help="Turn on dynamic batching: merge concurrent requests arriving within "
                   "this many ms (0: only those already queued) [default: off].")
@click.option("--max-body-mb", type=float, default=DEFAULT_BODY_MB, show_default=True,
              help="Largest request body in MiB (413 above).")
@click.option("--threads", type=int, default=None,
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
        if not max_body_mb > 0:
            raise QuantkitError(f"bad value for --max-body-mb: {max_body_mb} (a positive "
                                "number of MiB)")
        serve(bundle, host=host, port=port, workers=workers, max_batch=max_batch,
              max_wait_ms=max_wait_ms, max_body_bytes=int(max_body_mb * MIB),
              threads=threads, access_log=not no_access_log)
