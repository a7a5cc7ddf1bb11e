"""PNG plots of benchmark results: latency against accuracy, and artifact size per target.

Figures have a fixed size in inches at a fixed DPI, so a plot's pixel size depends only on
what is plotted (panels, bars) and two runs' PNGs line up side by side.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quantkit.atomic import atomic_path
from quantkit.benchmark.formatting import (MB, fmt_ratio, fmt_sig3, machine_name, machines,
                                           target_label)
from quantkit.benchmark.recommend import quality, recommend
from quantkit.benchmark.results import BenchRecord, BenchResults

DPI = 100
PANEL_WIDTH_IN = 6.0  # one latency-vs-accuracy panel per batch size
PANEL_HEIGHT_IN = 4.5
SIZE_WIDTH_IN = 8.0
BAR_HEIGHT_IN = 0.5  # size plot: this much per bar, plus the margin for title and footnote
BAR_MARGIN_IN = 1.5
LOG_SCALE_SPAN = 10.0  # use a log latency axis once the slowest is 10x the fastest
NOTHING_TO_PLOT = "no measured targets"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_FOOTNOTE_ITEMS = 8


@dataclass(frozen=True)
class _Point:
    target: str
    batch: int
    machine: str
    latency_ms: float
    quality: float
    pareto: bool = False
    unit: str = "%"  # of quality, for the PNG's text: "%", " dB" or " pts"


def plot_latency_vs_accuracy(results: BenchResults, path: Path) -> Path:
    """One marker per measured record: p50 latency (x) against its headline quality (y).

    One panel per batch size (a batch-64 latency is not comparable with batch 1), one
    colour per target, one marker shape per machine when there are several; the Pareto
    front of each panel (no target both faster and better) is ringed and joined.
    """
    plt = _pyplot()
    metric_label, y_of, unit = _y_axis(results.records)
    front = {(rec.machine, rec.batch_size, candidate.target)
             for rec in recommend(results) if len(rec.candidates) > 1
             for candidate in rec.candidates if candidate.pareto}
    points: list[_Point] = []
    left_out: list[tuple[BenchRecord, str]] = []
    for record in results.records:
        reason = _why_not_plotted(record)
        if reason:
            left_out.append((record, reason))
            continue
        machine = machine_name(record)
        points.append(_Point(target_label(record), record.batch_size, machine,
                             record.latency_ms["p50_ms"], y_of(record),
                             (machine, record.batch_size, record.target) in front, unit))
    names = list(machines(results))
    several = len(names) > 1  # the title cannot name the machine: each label does
    batches = sorted({point.batch for point in points})
    title = f"Latency vs {metric_label}: {_machines_title(names)}"
    width = PANEL_WIDTH_IN * max(1, len(batches))
    fig, axes = plt.subplots(1, max(1, len(batches)), squeeze=False, sharey=True, dpi=DPI,
                             figsize=(width, PANEL_HEIGHT_IN))
    try:
        fig.suptitle(title, fontsize=11)
        fig.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, top=0.8, bottom=0.22,
                            wspace=0.12)
        shown: list[str] = []
        if not points:
            _say_nothing(axes[0][0])
        colours = _target_colours(results.records)
        plotted = [name for name in names if any(point.machine == name for point in points)]
        markers = {name: _MARKERS[index % len(_MARKERS)] for index, name in enumerate(plotted)}
        for ax, batch in zip(axes[0], batches):
            shown += _draw_panel(ax, [point for point in points if point.batch == batch],
                                 colours, markers if several else {})
            ax.set_title(f"batch {batch}", fontsize=9)
        if points:
            axes[0][0].set_ylabel(metric_label)
            _min_span(axes[0][0], [point.quality for point in points])
            _legend(fig, [target for target in colours if any(p.target == target for p in points)],
                    colours, markers if several else {}, any(p.pareto for p in points))
        footnote = _footnote(fig, left_out)
        _save(fig, path, title, shown, footnote)
    finally:
        plt.close(fig)
    return Path(path)


ANNOTATE_AT_MOST = 4


def _draw_panel(ax, points: list[_Point], colours: dict, markers: dict[str, str]) -> list[str]:
    """Scatter one batch size's points, each labelled; the labels, for the PNG's text."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    shown = []
    for machine in {point.machine for point in points}:
        front = sorted((p for p in points if p.pareto and p.machine == machine),
                       key=lambda p: p.latency_ms)
        if len(front) > 1:
            ax.plot([p.latency_ms for p in front], [p.quality for p in front], "--",
                    color="black", linewidth=0.8, zorder=2)
    for point in points:
        ax.scatter(point.latency_ms, point.quality, s=60, zorder=3,
                   color=colours[point.target], marker=markers.get(point.machine, "o"),
                   edgecolors="black" if point.pareto else "none", linewidths=1.5)
        label = f"{point.target} b{point.batch}" + (f" @{point.machine}" if markers else "")
        if len(points) <= ANNOTATE_AT_MOST:  # more labels overlap; the legend names colours
            ax.annotate(label, (point.latency_ms, point.quality), fontsize=7,
                        xytext=(5, 4), textcoords="offset points")
        shown.append(f"{label}: {fmt_sig3(point.latency_ms)} ms, {point.quality:.2f}{point.unit}"
                     + (" (Pareto front)" if point.pareto else ""))
    latencies = [point.latency_ms for point in points]
    ax.margins(x=0.25, y=0.2)
    if min(latencies) > 0 and max(latencies) / min(latencies) > LOG_SCALE_SPAN:
        ax.set_xscale("log")
        # Plain numbers at 1-2-5 steps: "10^1" alone tells a reader little.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xlim(left=0)  # latency from zero: a linear axis should not exaggerate gaps
    ax.set_xlabel("p50 latency (ms per call)")
    ax.grid(True, alpha=0.3)
    return shown


def _min_span(ax, values: list[float], points: float = 1.0) -> None:
    """Show at least `points` percentage points, so 0.04-point gaps do not look huge."""
    low, high = ax.get_ylim()
    if high - low < points:
        middle = (min(values) + max(values)) / 2
        ax.set_ylim(middle - points / 2, middle + points / 2)


def plot_sizes(results: BenchResults, path: Path) -> Path:
    """Horizontal bars: artifact size in MB per target and machine, ratio to FP32 on each.

    Batch sizes share one artifact, so each target/machine gets one bar. A size is a
    property of the artifact, so a target whose measurement failed still has its bar.
    """
    plt = _pyplot()
    bars: dict[tuple[str, str], BenchRecord] = {}
    left_out: list[tuple[BenchRecord, str]] = []
    for record in results.records:
        key = (target_label(record), machine_name(record))
        if record.size_bytes is None:
            left_out.append((record, "no size"))
        else:
            bars.setdefault(key, record)
    # A target sized at one batch size but not another is not "left out".
    left_out = [(record, reason) for record, reason in left_out
                if (target_label(record), machine_name(record)) not in bars]
    names = list(machines(results))
    several = len(names) > 1
    height = BAR_MARGIN_IN + BAR_HEIGHT_IN * max(2, len(bars))
    fig, ax = plt.subplots(figsize=(SIZE_WIDTH_IN, height), dpi=DPI)
    title = f"Artifact size: {_machines_title(names)}"
    texts = []
    try:
        fig.suptitle(title, fontsize=11)
        fig.subplots_adjust(left=0.3, right=0.97, top=1 - 0.6 / height,
                            bottom=0.75 / height)
        if not bars:
            _say_nothing(ax)
        else:
            colours = _target_colours(results.records)
            labels = [f"{target} @{machine}" if several else target for target, machine in bars]
            sizes = [record.size_bytes / MB for record in bars.values()]
            positions = range(len(bars))
            ax.barh(positions, sizes, color=[colours[target] for target, _ in bars],
                    height=0.6)
            ax.set_yticks(list(positions), labels, fontsize=8)
            ax.invert_yaxis()  # first target on top, as in the table
            ax.set_xlim(0, max(sizes) * 1.45 or 1)
            for position, (size, record) in enumerate(zip(sizes, bars.values())):
                text = f"{fmt_sig3(size)} MB"
                if record.size_ratio is not None:
                    text += f" ({fmt_ratio(record.size_ratio)} FP32)"
                ax.text(size, position, " " + text, va="center", fontsize=8)
                texts.append(f"{labels[position]}: {text}")
            ax.set_xlabel("size (MB, 10^6 bytes)")
            ax.grid(True, axis="x", alpha=0.3)
        footnote = _footnote(fig, left_out, y=0.15 / height)
        _save(fig, path, title, texts, footnote)
    finally:
        plt.close(fig)
    return Path(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI event loop
    import matplotlib.pyplot as plt

    return plt


def _y_axis(records: list[BenchRecord]):
    """(axis label, record -> y, unit): the headline the records share (recommend.quality), or,
    when they lead with different metrics (a zoo of tasks), the drop vs FP32 negated, so up
    is better on every panel."""
    measured = [record for record in records if quality(record)[1] is not None]
    names = {quality(record)[0] for record in measured}
    if len(names) == 1:
        accuracy = measured[0].accuracy
        direction = "" if accuracy.higher_is_better else ", lower is better"
        unit = "dB" if accuracy.unit == "dB" else "%"
        return (f"{names.pop()} ({unit}{direction})", lambda record: quality(record)[1],
                " dB" if unit == "dB" else "%")
    return ("quality vs FP32 (- drop in points; 0 = FP32)",
            lambda record: -quality(record)[2] if quality(record)[2] is not None else None,
            " pts")


def _why_not_plotted(record: BenchRecord) -> str | None:
    if record.status != "ok":
        return record.status
    if not record.latency_ms or record.latency_ms.get("p50_ms") is None:
        return "no latency"
    if record.batch_size is None:
        return "no batch size"
    if quality(record)[1] is None or quality(record)[2] is None:
        return "no accuracy"
    return None


def _target_colours(records: list[BenchRecord]) -> dict[str, tuple]:
    """The same colour for a target in every plot of one report (order of appearance)."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    targets = list(dict.fromkeys(target_label(record) for record in records))
    return {target: palette(index % 10) for index, target in enumerate(targets)}


def _legend(fig, targets: list[str], colours: dict, markers: dict[str, str],
            front: bool = False) -> None:
    """Colours name targets, shapes name machines; one row under the title, off the data."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=colours[target], label=target)
               for target in targets]
    handles += [Line2D([], [], marker=marker, linestyle="", color="grey", label=name)
                for name, marker in markers.items()]
    if front:
        handles.append(Line2D([], [], marker="o", linestyle="--", color="black",
                              markerfacecolor="white", label="Pareto front"))
    fig.legend(handles=handles, fontsize=7, loc="upper center", ncol=len(handles),
               bbox_to_anchor=(0.5, 0.93), frameon=False)


def _machines_title(names: list[str]) -> str:
    if not names:
        return "no machine"
    if len(names) == 1:
        return names[0]
    return f"{len(names)} machines ({', '.join(names)})"


def _say_nothing(ax) -> None:
    ax.text(0.5, 0.5, NOTHING_TO_PLOT, ha="center", va="center", fontsize=14,
            transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _footnote(fig, left_out: list[tuple[BenchRecord, str]], y: float = 0.02) -> str:
    """Say which records are missing from the figure, so an absent target is not a mystery."""
    if not left_out:
        return ""
    items = list(dict.fromkeys(
        target_label(record)
        + (f" b{record.batch_size}" if record.batch_size is not None else "")
        + f" @{machine_name(record)} ({reason})" for record, reason in left_out))
    shown = ", ".join(items[:_FOOTNOTE_ITEMS])
    if len(items) > _FOOTNOTE_ITEMS:
        shown += f", and {len(items) - _FOOTNOTE_ITEMS} more"
    footnote = f"Not plotted: {shown}"
    fig.text(0.01, y, footnote, fontsize=7, color="dimgrey", wrap=True)
    return footnote


def _save(fig, path: Path, title: str, shown: list[str], footnote: str) -> None:
    """Write the PNG with its content in words (PNG text chunks): alt text, and testable."""
    description = "; ".join(shown) if shown else NOTHING_TO_PLOT
    if footnote:
        description += f". {footnote}"
    with atomic_path(Path(path)) as partial:
        fig.savefig(partial, format="png", dpi=DPI,
                    metadata={"Title": title, "Description": description})
