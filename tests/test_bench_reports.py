"""The views of benchmark results (table, CSV, Markdown, PNGs) show the measured numbers.

Results are built in code (two machines, two targets, two batch sizes, one failure), so
these tests need no model and no backend and run in seconds.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from quantkit.benchmark import plots, report
from quantkit.benchmark.results import Accuracy, BenchRecord, BenchResults
from quantkit.errors import QuantkitError
from accuracies import agreement_accuracy, top1_accuracy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

XEON = {"hostname": "xeon-box", "arch": "x86_64", "cpu_model": "Intel(R) Xeon(R) Gold 6230R",
        "isa_flags": ["avx2", "avx512_vnni", "avx512f"], "logical_cores": 8,
        "os": "Linux-5.15.0-x86_64-with-glibc2.35", "python": "3.10.14",
        "libraries": {"onnxruntime": "1.19.2", "paddlelite": "2.13rc0", "numpy": "1.26.4"}}
PI4 = {"hostname": "raspberrypi", "arch": "aarch64", "cpu_model": "Cortex-A72",
       "isa_flags": ["asimd"], "logical_cores": 4, "os": "Linux-6.1.0-rpi7-aarch64",
       "python": "3.10.12", "libraries": {"paddlelite": "2.13rc0", "numpy": "1.26.4"}}
TRT_ERROR = "no TensorRT [cu12] runtime: pip install tensorrt==8.6.1 or drop this target"

# (target, backend, host, machine, batch, p50, p90, p99, cv, sps, rss, size, ratio, top1, agree)
ROWS = [
    ("onnx-int8", "onnxruntime", "local", XEON, 1, 0.412, 0.455, 0.731, 0.04, 2381.0,
     312_400_000, 1_234_567, 0.262, 0.9712, 0.9950),
    ("onnx-int8", "onnxruntime", "local", XEON, 8, 1.874, 1.991, 2.468, 0.05, 4213.9,
     318_900_000, 1_234_567, 0.262, 0.9712, 0.9950),
    ("lite-int8", "paddle-lite", "local", XEON, 1, 0.688, 0.702, 0.915, 0.03, 1436.8,
     201_000_000, 1_102_848, 0.234, 0.9708, 0.9935),
    ("lite-int8", "paddle-lite", "local", XEON, 8, 4.731, 5.902, 9.447, 0.31, 1615.2,
     204_500_000, 1_102_848, 0.234, 0.9708, 0.9935),
    ("onnx-int8", "onnxruntime", "pi4", PI4, 1, 3.118, 3.305, 4.027, 0.06, 318.2,
     96_100_000, 1_234_567, 0.262, 0.9712, 0.9950),
    ("onnx-int8", "onnxruntime", "pi4", PI4, 8, 22.61, 23.9, 27.35, 0.05, 352.7,
     99_800_000, 1_234_567, 0.262, 0.9712, 0.9950),
    ("lite-int8", "paddle-lite", "pi4", PI4, 1, 2.204, 2.351, 2.977, 0.05, 451.0,
     61_300_000, 1_102_848, 0.234, 0.9708, 0.9935),
    ("lite-int8", "paddle-lite", "pi4", PI4, 8, 15.02, 15.87, 18.11, 0.04, 531.4,
     64_200_000, 1_102_848, 0.234, 0.9708, 0.9935),
]


def _record(target, backend, host, machine, batch, p50, p90, p99, cv, sps, rss, size, ratio,
            top1, agree) -> BenchRecord:
    mean = (p50 + p90) / 2
    latency = {"iterations": 100, "min_ms": p50 * 0.93, "mean_ms": mean, "p50_ms": p50,
               "p90_ms": p90, "p99_ms": p99, "max_ms": p99 * 1.1, "std_ms": cv * mean, "cv": cv}
    accuracy = top1_accuracy(2000, top1, 0.9735, round((0.9735 - top1) * 100, 4),
                             argmax_agreement=agree, mean_abs_prob_diff=0.0012)
    return BenchRecord(target=target, backend=backend, precision="int8", device="cpu",
                       status="ok", host=host, batch_size=batch, threads=4,
                       timing_mode="runtime", latency_ms=latency, throughput_sps=sps,
                       peak_rss_bytes=rss, size_bytes=size, size_ratio=ratio,
                       accuracy=accuracy, machine=dict(machine))


def _failed() -> BenchRecord:
    return BenchRecord(target="trt-int8", backend="tensorrt", precision="int8", device="gpu",
                       status="failed", host="local", error=TRT_ERROR, machine=dict(XEON))


def _xeon_run() -> BenchResults:
    return BenchResults(records=[_record(*row) for row in ROWS[:4]] + [_failed()],
                        settings={"batch_sizes": [1, 8], "iterations": 100},
                        eval_set={"name": "mnist-test", "rows": 2000},
                        reference={"target": "fp32", "size_bytes": 4_712_345, "top1": 0.9735},
                        created_utc="2025-06-01T10:00:00+00:00")


def _pi_run() -> BenchResults:
    return BenchResults(records=[_record(*row) for row in ROWS[4:]],
                        settings={"batch_sizes": [1, 8], "iterations": 100},
                        created_utc="2025-06-01T11:00:00+00:00")


@pytest.fixture()
def results() -> BenchResults:
    """Both machines in one comparison: 8 measured records and one failed target."""
    merged = BenchResults(records=_xeon_run().records + _pi_run().records,
                          created_utc="2025-06-01T12:00:00+00:00")
    return merged


def _png_text(path: Path) -> dict[str, str]:
    with Image.open(path) as image:
        image.load()
        return dict(image.text)


def _assert_png(path: Path, shape: tuple[int, int, int]) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000  # a drawn figure, not an empty canvas
    pixels = matplotlib.image.imread(path)
    assert pixels.shape == shape
    assert pixels[..., :3].std() > 0.01  # something was drawn on the white background


# -- formatting -----------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [(0.4123, "0.412"), (1.874, "1.87"), (22.61, "22.6"),
                                         (9.996, "10.0"), (1234.5, "1230"), (0, "0"),
                                         (0.012345, "0.0123"), (None, "-")])
def test_milliseconds_have_three_significant_digits(value, text):
    assert report.fmt_ms(value) == text


def test_percentages_have_two_decimals_and_none_is_a_dash():
    from quantkit.benchmark.formatting import fmt_pct

    assert fmt_pct(0.97123) == "97.12%"
    assert fmt_pct(1.0) == "100.00%"
    assert fmt_pct(None) == "-"
    assert report.fmt_quality(top1_accuracy(1, 0.97123)) == "97.12%"
    assert report.fmt_quality(dataclasses.replace(top1_accuracy(1, 31.25), unit="dB")) == \
        "31.2 dB"
    assert report.fmt_points(0.2345) == "0.23"
    assert report.fmt_points(-0.0) == "0.00"
    assert report.fmt_ratio(0.2619) == "0.26x"
    assert report.fmt_mb(1_234_567) == "1.23"


# -- CSV ------------------------------------------------------------------------------

def test_csv_has_one_row_per_record_with_exact_numbers(results):
    rows = list(csv.DictReader(io.StringIO(report.to_csv(results))))
    assert len(rows) == 9
    assert tuple(rows[0]) == report.CSV_COLUMNS
    first = rows[0]
    assert (first["target"], first["machine"], first["batch_size"]) == (
        "onnx-int8", "xeon-box", "1")
    assert float(first["latency_p50_ms"]) == 0.412
    assert float(first["latency_p99_ms"]) == 0.731
    assert int(first["latency_iterations"]) == 100
    assert float(first["throughput_sps"]) == 2381.0
    assert int(first["size_bytes"]) == 1_234_567
    assert (first["accuracy_task"], first["accuracy_metric"]) == ("classification", "top1")
    assert float(first["accuracy_value"]) == 0.9712
    assert json.loads(first["accuracy_metrics"])["argmax_agreement"] == 0.995
    assert float(first["accuracy_drop_points"]) == pytest.approx(0.23)
    assert first["machine_cpu_model"] == "Intel(R) Xeon(R) Gold 6230R"
    assert first["machine_isa_flags"] == "avx2 avx512_vnni avx512f"
    assert "onnxruntime=1.19.2" in first["machine_libraries"]
    assert first["error"] == ""
    failed = next(row for row in rows if row["status"] == "failed")
    assert failed["error"] == TRT_ERROR
    assert failed["latency_p50_ms"] == failed["batch_size"] == failed["accuracy_value"] == ""
    pi = [row for row in rows if row["machine"] == "pi4"]
    assert [float(row["latency_p99_ms"]) for row in pi] == [4.027, 27.35, 2.977, 18.11]
    assert {row["machine_hostname"] for row in pi} == {"raspberrypi"}


# -- Markdown -------------------------------------------------------------------------

def test_markdown_table_has_a_row_per_record_and_names_the_machines(results):
    text = report.to_markdown(results)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(report.TABLE_COLUMNS) + " |"
    assert set(table[1].replace("|", "").replace(":", "")) == {"-"}
    body = table[2:]
    assert len(body) == 9
    assert all(line.count(" | ") == len(report.TABLE_COLUMNS) - 1 for line in body)
    first = [cell.strip() for cell in body[0].strip("|").split("|")]
    assert first[:8] == ["onnx-int8", "xeon-box", "1", "ok", "0.412", "0.455", "0.731", "2380"]
    assert first[8:15] == ["312", "1.23", "0.26x", "top1", "97.12%", "97.35%", "0.23"]
    failed = [cell.strip() for cell in body[4].strip("|").split("|")]
    assert failed[2:5] == ["-", "failed", "-"]
    assert "no TensorRT [cu12] runtime" in failed[-1]
    assert "high CV 0.31" in body[3]
    assert "**xeon-box**: Intel(R) Xeon(R) Gold 6230R (x86_64, 8 logical cores" in text
    assert "**pi4 (raspberrypi)**: Cortex-A72 (aarch64, 4 logical cores" in text


def test_markdown_escapes_pipes_in_error_text():
    record = BenchRecord(target="x", backend="b", precision="int8", device="cpu",
                         status="crashed", error="exited | core dumped\nmore")
    row = report.to_markdown(BenchResults(records=[record])).splitlines()[2]
    assert "exited \\| core dumped" in row
    assert row.count(" | ") == len(report.TABLE_COLUMNS) - 1


# -- rich table -----------------------------------------------------------------------

def test_rich_table_shows_targets_percentiles_and_the_failure(results):
    from rich.console import Console

    console = Console(record=True, width=200)
    table = report.render_table(results, console=console)
    text = console.export_text()
    assert table.row_count == 9
    for expected in ("onnx-int8", "lite-int8", "trt-int8", "0.731", "27.4", "9.45",
                     "97.12%", "1.23", "0.26x", "high CV 0.31", "pi4 (raspberrypi)"):
        assert expected in text, expected
    # Square brackets survive: the error is printed as text, not parsed as rich markup.
    assert "no TensorRT [cu12] runtime" in text
    # Long notes are cut in the terminal (the full text is in results.json and .md).
    assert TRT_ERROR not in text and "…" in text


# -- plots and the whole report -------------------------------------------------------

def test_write_reports_writes_every_file_atomically(results, tmp_path):
    out = tmp_path / "report"
    paths = report.write_reports(results, out)
    assert {kind: path.name for kind, path in paths.items()} == report.REPORT_FILES
    assert sorted(item.name for item in out.iterdir()) == sorted(report.REPORT_FILES.values())
    assert BenchResults.load(paths["json"]) == results
    assert paths["csv"].read_text() == report.to_csv(results)
    assert paths["markdown"].read_text() == report.to_markdown(results)
    # Two batch sizes: two panels side by side.
    _assert_png(paths["latency_vs_accuracy"],
                (int(plots.PANEL_HEIGHT_IN * plots.DPI),
                 int(2 * plots.PANEL_WIDTH_IN * plots.DPI), 4))
    latency = _png_text(paths["latency_vs_accuracy"])
    assert latency["Title"] == "Latency vs top-1 accuracy (%): 2 machines (xeon-box, pi4)"
    assert latency["Description"].count(" ms, ") == 8
    assert "onnx-int8 b8 @pi4: 22.6 ms, 97.12%" in latency["Description"]
    assert "Not plotted: trt-int8 @xeon-box (failed)" in latency["Description"]
    # Four artifacts (2 targets x 2 machines), batch sizes folded into one bar each.
    _assert_png(paths["size"], (int((plots.BAR_MARGIN_IN + 4 * plots.BAR_HEIGHT_IN) * plots.DPI),
                                int(plots.SIZE_WIDTH_IN * plots.DPI), 4))
    sizes = _png_text(paths["size"])["Description"]
    assert sizes.split(". Not plotted")[0].split("; ") == [
        "onnx-int8 @xeon-box: 1.23 MB (0.26x FP32)", "lite-int8 @xeon-box: 1.10 MB (0.23x FP32)",
        "onnx-int8 @pi4: 1.23 MB (0.26x FP32)", "lite-int8 @pi4: 1.10 MB (0.23x FP32)"]
    assert "trt-int8 @xeon-box (no size)" in sizes


def test_one_machine_uses_agreement_when_no_labels(tmp_path):
    unlabelled = agreement_accuracy(500, 0.988)
    records = [dataclasses.replace(_record(*row), accuracy=unlabelled) for row in ROWS[4:6]]
    path = plots.plot_latency_vs_accuracy(BenchResults(records=records), tmp_path / "l.png")
    text = _png_text(path)
    assert text["Title"] == "Latency vs agreement with FP32's top class (%): pi4"
    assert text["Description"] == "onnx-int8 b1: 3.12 ms, 98.80%; onnx-int8 b8: 22.6 ms, 98.80%"


def _write_from(paths, out):
    """What `quantkit report` does: load (and merge) results files, write every view."""
    return report.write_reports(report.load_results(paths), out)


def test_report_from_files_merges_two_machines(tmp_path):
    xeon, pi = tmp_path / "xeon.json", tmp_path / "pi.json"
    _xeon_run().save(xeon)
    _pi_run().save(pi)
    paths = _write_from([xeon, pi], tmp_path / "out")
    merged = BenchResults.load(paths["json"])
    assert len(merged.records) == 9
    assert [entry["created_utc"] for entry in merged.settings["merged_from"]] == [
        "2025-06-01T10:00:00+00:00", "2025-06-01T11:00:00+00:00"]
    assert {report.machine_name(record): record.machine["cpu_model"]
            for record in merged.records} == {"xeon-box": XEON["cpu_model"],
                                              "pi4": PI4["cpu_model"]}
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert [row["machine"] for row in rows].count("pi4") == 4
    assert "**pi4 (raspberrypi)**" in paths["markdown"].read_text()


def test_report_from_one_file_keeps_it_as_is(tmp_path):
    source = tmp_path / "xeon.json"
    _xeon_run().save(source)
    paths = _write_from([source], tmp_path / "out")
    loaded = BenchResults.load(paths["json"])
    assert loaded.recommendation  # the views add the answer, and nothing else
    assert dataclasses.replace(loaded, recommendation=None) == _xeon_run()


def test_empty_results_say_no_measured_targets(tmp_path):
    paths = report.write_reports(BenchResults(), tmp_path)
    for kind in ("latency_vs_accuracy", "size"):
        assert paths[kind].read_bytes()[:8] == PNG_MAGIC
        assert _png_text(paths[kind])["Description"] == plots.NOTHING_TO_PLOT
    assert list(csv.DictReader(io.StringIO(paths["csv"].read_text()))) == []
    assert "No records." in paths["markdown"].read_text()


def test_only_failures_are_named_in_the_footnote(tmp_path):
    results = BenchResults(records=[_failed()])
    path = plots.plot_latency_vs_accuracy(results, tmp_path / "l.png")
    import matplotlib.image

    assert matplotlib.image.imread(path).shape == (450, 600, 4)
    assert _png_text(path)["Description"] == (
        "no measured targets. Not plotted: trt-int8 @xeon-box (failed)")


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not valid JSON"),
    (json.dumps({"schema": "other/9", "records": []}), "not a quantkit results file"),
    (json.dumps({"schema": "quantkit.bench/2", "records": [{"target": "x"}]}), "record lacks"),
    (json.dumps({"schema": "quantkit.bench/2", "records": [
        {"target": "x", "backend": "b", "precision": "int8", "device": "cpu",
         "status": "ok", "accuracy": {"rows": 1, "bogus": 2}}]}), "accuracy must be a mapping"),
    (json.dumps({"schema": "quantkit.bench/2", "records": [
        {"target": "x", "backend": "b", "precision": "int8", "device": "cpu",
         "status": "exploded"}]}), "status 'exploded'"),
    (json.dumps({"schema": "quantkit.bench/2", "records": [
        {"target": "x", "backend": "b", "precision": "int8", "device": "cpu",
         "status": "ok", "latency_ms": "0.41 ms"}]}), "record 0 (x): latency_ms must be"),
    (json.dumps({"schema": "quantkit.bench/2", "records": [
        {"target": "x", "backend": "b", "precision": "int8", "device": "cpu",
         "status": "ok", "size_bytes": "1.2 MB"}]}), "size_bytes must be a number"),
])
def test_bad_results_file_is_refused_naming_the_file(tmp_path, content, expected):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    _pi_run().save(good)
    bad.write_text(content)
    with pytest.raises(QuantkitError) as caught:
        _write_from([good, bad], tmp_path / "out")
    assert str(bad) in str(caught.value)
    assert expected in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_missing_results_file_and_no_files_are_refused(tmp_path):
    with pytest.raises(QuantkitError, match="missing: .*nope.json"):
        _write_from([tmp_path / "nope.json"], tmp_path / "out")
    with pytest.raises(QuantkitError, match="at least one"):
        _write_from([], tmp_path / "out")
