"""A sensitivity report as a table (terminal and Markdown), JSON and a bar plot."""
from __future__ import annotations

import json
from pathlib import Path

from quantkit.atomic import atomic_path
from quantkit.calibration.sensitivity import OutputError, SensitivityReport

JSON_NAME, MARKDOWN_NAME, PLOT_NAME = "sensitivity.json", "sensitivity.md", "sensitivity.png"
PLOT_LAYERS = 30  # the worst N layers: a bar per layer stays readable
DPI = 110


def write_sensitivity_reports(report: SensitivityReport, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": out_dir / JSON_NAME, "markdown": out_dir / MARKDOWN_NAME,
               "plot": out_dir / PLOT_NAME}
    with atomic_path(written["json"]) as partial:
        partial.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    with atomic_path(written["markdown"]) as partial:
        partial.write_text(markdown(report))
    plot(report, written["plot"])
    return written


def markdown(report: SensitivityReport, limit: int | None = None) -> str:
    """Worst layers first: each quantized alone, its effect on the model's output."""
    drop_header = "top-1 drop (points)" if report.labelled else "disagreement (points)"
    lines = [f"Sensitivity of {report.model} ({report.algo}, {report.rows} eval rows): each "
             "layer quantized alone, model output vs FP32, worst first.", "",
             f"| rank | layer (skip entry) | op | output SQNR dB | cosine | agreement | "
             f"{drop_header} |", "|---:|---|---|---:|---:|---:|---:|"]
    shown = report.layers if limit is None else report.layers[:limit]
    for rank, entry in enumerate(shown, 1):
        lines.append(f"| {rank} | `{entry.layer}` | {entry.op_type} | " + _cells(entry.error))
    lines.append("| all | every layer quantized | | " + _cells(report.all_layers))
    if limit is not None and len(report.layers) > limit:
        lines.append(f"\n{len(report.layers) - limit} more layer(s) in the JSON report.")
    return "\n".join(lines) + "\n"


def _cells(error: OutputError) -> str:
    return (f"{error.sqnr_db:.1f} | {error.cosine:.5f} | {error.agreement:.2%} | "
            f"{error.drop_points():.2f} |")


def plot(report: SensitivityReport, path: Path) -> Path:
    """Horizontal bars of output SQNR per layer (lower = more harmful), worst on top."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display
    import matplotlib.pyplot as plt

    shown = report.layers[:PLOT_LAYERS]
    height = 1.2 + 0.28 * max(1, len(shown))
    fig, ax = plt.subplots(figsize=(8, height))
    try:
        names = [entry.layer for entry in shown][::-1]
        values = [entry.error.sqnr_db for entry in shown][::-1]
        ax.barh(names, values, color="tab:red")
        ax.axvline(report.all_layers.sqnr_db, color="dimgrey", linestyle="--",
                   label=f"all layers quantized: {report.all_layers.sqnr_db:.1f} dB")
        ax.set_xlabel("model output SQNR vs FP32 with only this layer quantized (dB, "
                      "lower = more harmful)")
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=8, loc="lower right")
        left_out = len(report.layers) - len(shown)
        title = f"Layer sensitivity ({report.algo}, {report.rows} rows)" + (
            f", worst {len(shown)} of {len(report.layers)}" if left_out else "")
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        description = "; ".join(f"{entry.layer}: {entry.error.sqnr_db:.1f} dB" for entry in shown)
        with atomic_path(Path(path)) as partial:
            fig.savefig(partial, format="png", dpi=DPI,
                        metadata={"Title": title, "Description": description})
    finally:
        plt.close(fig)
    return Path(path)
