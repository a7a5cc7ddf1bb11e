"""The options every measuring command takes (`bench`, `run`, `fleet`), in one place.

One timed loop for every target means one set of flags and defaults for it; the commands
add what is theirs (eval data, remote hosts, a cluster address) around these.
"""
from __future__ import annotations

import click

from quantkit.benchmark.jobs import MeasureSettings
from quantkit.cli_types import NON_NEGATIVE, POSITIVE, POSITIVE_SECONDS, BatchSizes

MEASURE = MeasureSettings()


def timing_options(command):
    """--batch-sizes, --threads, --warmup, --iterations, --duration, --timeout."""
    options = [
        click.option("--batch-sizes", type=BatchSizes(), default="1", show_default=True,
                     help="Comma-separated batch sizes to time, e.g. 1,64."),
        click.option("--threads", type=POSITIVE, default=None,
                     help="CPU threads per target (default: each target profile's)."),
        click.option("--warmup", type=NON_NEGATIVE, default=MEASURE.warmup, show_default=True,
                     help="Untimed runs before timing."),
        click.option("--iterations", type=POSITIVE, default=None,
                     help=f"Timed runs per batch size [default: {MEASURE.iterations} unless "
                          "--duration]."),
        click.option("--duration", type=POSITIVE_SECONDS, default=None,
                     help="Time each batch size for this many seconds instead."),
        click.option("--timeout", type=POSITIVE_SECONDS, default=MEASURE.timeout_s,
                     show_default=True, help="Seconds allowed per target process."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def hosts_file_option(what: str = "Hosts file"):
    """--hosts FILE: where remote host names (SSH/adb boards) are read from."""
    from pathlib import Path

    return click.option("--hosts", "hosts_file", type=click.Path(path_type=Path), default=None,
                        help=f"{what} (default: ./hosts.toml, then "
                             "~/.config/quantkit/hosts.toml).")


def measure_settings(batch_sizes, threads, warmup, iterations, duration,
                     timeout) -> MeasureSettings:
    """The MeasureSettings the timing options asked for (--iterations by default)."""
    if iterations is None and duration is None:
        iterations = MEASURE.iterations
    return MeasureSettings(batch_sizes=tuple(batch_sizes), threads=threads, warmup=warmup,
                           iterations=iterations, duration_s=duration, timeout_s=timeout)
