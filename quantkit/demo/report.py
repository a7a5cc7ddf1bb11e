"""Terminal rendering of the demo: progress bars per stage and the result table."""
from __future__ import annotations

from typing import Callable

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from quantkit.demo.pipeline import DemoProgress, DemoResult


class RichDemoProgress(DemoProgress):
    """One progress bar per stage; stages without a known length show a spinner."""

    def __init__(self, console: Console | None = None):
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description:<14}"),
                                  BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  TimeRemainingColumn(), console=console or Console(stderr=True))
        self._current = None

    def __enter__(self) -> "RichDemoProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._finish_current()
        self._progress.stop()

    def _finish_current(self) -> None:
        if self._current is not None:
            task = self._progress.tasks[self._current]
            self._progress.update(self._current, completed=task.total or 1, total=task.total or 1)

    def stage(self, name: str, total: int | None) -> Callable[[int], None]:
        self._finish_current()
        self._current = task = self._progress.add_task(name, total=total)
        return lambda advance: self._progress.advance(task, advance)


def render_demo_table(result: DemoResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"MobileNetV1 x{result.settings['train']['scale']} on MNIST "
                        f"({result.eval_images} test images)")
    for column in ("model", "top-1", "size on disk", "time"):
        table.add_column(column, justify="right" if column != "model" else "left")
    table.add_row("FP32", f"{result.fp32_top1:.2%}", _megabytes(result.fp32_bytes),
                  f"train {result.train_seconds:.0f} s")
    table.add_row(f"INT8 ({result.settings['algo']})", f"{result.int8_top1:.2%}",
                  _megabytes(result.int8_bytes), f"calibrate {result.calibration_seconds:.1f} s")
    console.print(table)
    drop = (result.fp32_top1 - result.int8_top1) * 100
    console.print(f"top-1 change FP32 -> INT8: {-drop:+.2f} points; size ratio "
                  f"{result.int8_bytes / result.fp32_bytes:.2f}; total {result.total_seconds:.0f} s")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"
