"""results.json has a published schema, and the schema and the loader agree on it.

The schema (quantkit/benchmark/results.schema.json) is what other tools validate our
results against; these tests keep it equal to what `BenchResults.to_dict()` writes and
check that documents it rejects are also refused by `BenchResults.from_dict`.
"""
from __future__ import annotations

import copy
import json
from dataclasses import fields

import pytest

jsonschema = pytest.importorskip("jsonschema")

from quantkit.benchmark import results as results_module  # noqa: E402
from quantkit.benchmark.measure import TIMING_MODE  # noqa: E402
from quantkit.machine import machine_facts  # noqa: E402
from quantkit.benchmark.results import (SCHEMA, STATUSES, Accuracy, BenchRecord,  # noqa: E402
                                        BenchResults, merge)
from quantkit.benchmark.stats import LatencyStats, summarize  # noqa: E402
from quantkit.errors import QuantkitError  # noqa: E402
from accuracies import top1_accuracy

SCHEMA_FILE = results_module.SCHEMA_FILE
BOARD = {"hostname": "rk3588", "arch": "aarch64", "cpu_model": "Cortex-A76",
         "isa_flags": ["asimd", "asimddp"], "logical_cores": 8, "os": "Linux-5.10-aarch64",
         "python": "3.10.12", "libraries": {"paddlelite": "2.13rc0", "numpy": "1.26.4"}}


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _ok(target: str = "onnx-int8", batch: int = 1, machine: dict | None = None,
        host: str = "local") -> BenchRecord:
    latency = summarize([0.00041, 0.00043, 0.00040, 0.00052, 0.00044])
    return BenchRecord(target=target, backend="onnxruntime", precision="int8", device="cpu",
                       status="ok", host=host, batch_size=batch, threads=2,
                       timing_mode=TIMING_MODE, latency_ms=latency.to_dict(),
                       throughput_sps=latency.throughput(batch), peak_rss_bytes=312_400_000,
                       size_bytes=1_234_567, size_ratio=0.262,
                       accuracy=top1_accuracy(2000, 0.9712, 0.9735, 0.23,
                                              argmax_agreement=0.995),
                       warnings=("high CV 0.18",),
                       machine=machine if machine is not None else machine_facts())


def _run() -> BenchResults:
    """One of each status the runner writes, on this machine."""
    here = machine_facts()
    return BenchResults(
        records=[
            _ok(),
            _ok(batch=8),
            BenchRecord(target="trt-int8", backend="tensorrt", precision="int8", device="gpu",
                        status="failed", error="TensorRT runtime not found", machine=here),
            BenchRecord(target="lite-int8", backend="paddle-lite", precision="int8",
                        device="cpu", status="crashed", batch_size=1, size_bytes=1_102_848,
                        size_ratio=0.234, peak_rss_bytes=88_000_000,
                        error="killed by SIGSEGV: Check failed: op conv2d", machine=here),
            BenchRecord(target="openvino-int8", backend="openvino", precision="int8",
                        device="cpu", status="skipped", error="openvino is not installed"),
        ],
        settings={"batch_sizes": [1, 8], "warmup": 10, "iterations": 100},
        eval_set={"name": "mnist-test", "rows": 2000},
        reference={"target": "fp32", "size_bytes": 4_712_345, "top1": 0.9735})


def _interrupted_run() -> BenchResults:
    return BenchResults(records=[_ok(machine=BOARD, host="rk3588"),
                                 BenchRecord(target="onnx-int8", backend="onnxruntime",
                                             precision="int8", device="cpu",
                                             status="interrupted", host="rk3588",
                                             batch_size=8, machine=BOARD)],
                        settings={"batch_sizes": [1, 8]}, interrupted=True)


# -- the schema describes what is written ------------------------------------------------

@pytest.mark.parametrize("build", [_run, _interrupted_run, BenchResults,
                                   lambda: merge([_run(), _interrupted_run()])])
def test_written_results_validate(validator, build, tmp_path):
    results = build()
    errors = [error.message for error in validator.iter_errors(results.to_dict())]
    assert errors == []
    results.save(tmp_path / "results.json")
    assert validator.is_valid(json.loads((tmp_path / "results.json").read_text()))


def test_schema_lists_every_field_the_dataclasses_write(validator):
    defs = validator.schema["$defs"]
    record_fields = [item.name for item in fields(BenchRecord)]
    assert list(defs["record"]["properties"]) == record_fields
    assert defs["record"]["required"] == record_fields
    assert list(defs["latency"]["properties"]) == [item.name for item in fields(LatencyStats)]
    # benchmark_bin (adb) gives avg/min/max only: percentiles, std and cv may be absent
    assert defs["latency"]["required"] == ["iterations", "min_ms", "mean_ms", "max_ms"]
    assert defs["accuracy"]["required"] == [item.name for item in fields(Accuracy)]
    assert defs["record"]["properties"]["status"]["enum"] == list(STATUSES)
    assert validator.schema["properties"]["schema"]["const"] == SCHEMA
    assert sorted(validator.schema["required"]) == sorted(BenchResults().to_dict())


def test_schema_rejects_a_wrong_version_and_extra_keys(validator):
    document = _run().to_dict()
    assert not validator.is_valid({**document, "schema": "quantkit.bench/1"})
    assert not validator.is_valid({**document, "surprise": 1})
    document["records"][0]["accuracy"]["task"] = "segmentation"  # not a task quantkit scores
    assert not validator.is_valid(document)


# -- what the schema rejects, the loader refuses -----------------------------------------

def _missing_status(record: dict) -> None:
    del record["status"]


def _latency_as_text(record: dict) -> None:
    record["latency_ms"] = "0.41 ms"


def _latency_as_list(record: dict) -> None:
    record["latency_ms"] = [0.41, 0.43, 0.40]


def _unknown_status(record: dict) -> None:
    record["status"] = "exploded"


def _unknown_field(record: dict) -> None:
    record["latency_p50"] = 0.41


@pytest.mark.parametrize("mutate", [
    _missing_status,
    _latency_as_text,
    _latency_as_list,
    _unknown_status,
    _unknown_field,
])
def test_mutated_record_is_rejected_by_schema_and_loader(validator, mutate):
    document = _run().to_dict()
    mutate(document["records"][0])
    assert not validator.is_valid(document)
    try:
        BenchResults.from_dict(copy.deepcopy(document), "mutated.json")
    except QuantkitError:
        pass
    else:
        raise AssertionError(f"{mutate.__name__}: BenchResults.from_dict accepted it")


@pytest.mark.parametrize("mutate", [
    _missing_status,
    _unknown_field,
    _unknown_status,
])
def test_loader_error_names_the_file_and_record(mutate):
    document = _run().to_dict()
    mutate(document["records"][0])
    with pytest.raises(QuantkitError) as caught:
        BenchResults.from_dict(document, "mutated.json")
    assert "mutated.json record 0" in str(caught.value)


@pytest.mark.parametrize("document", [
    {"records": []},
    {"schema": SCHEMA, "records": {"0": {}}},
    [],
])
def test_mutated_document_is_rejected_by_schema_and_loader(validator, document):
    assert not validator.is_valid(document)
    with pytest.raises(QuantkitError, match="bad.json"):
        BenchResults.from_dict(document, "bad.json")


# -- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("build", [_run, _interrupted_run])
def test_save_then_load_gives_equal_results(build, tmp_path):
    results = build()
    path = tmp_path / "results.json"
    results.save(path)
    loaded = BenchResults.load(path)
    assert loaded == results
    assert loaded.records[0].accuracy == results.records[0].accuracy
    assert loaded.records[0].warnings == ("high CV 0.18",)
    assert loaded.interrupted is results.interrupted
    assert [item.name for item in tmp_path.iterdir()] == ["results.json"]  # no .partial left


def test_merge_keeps_each_records_machine():
    local, board = _run(), _interrupted_run()
    merged = merge([local, board])
    assert len(merged.records) == len(local.records) + len(board.records)
    assert [record.machine for record in merged.records] == (
        [record.machine for record in local.records] + [BOARD, BOARD])
    assert merged.records[0].machine["hostname"] == machine_facts()["hostname"]
    assert merged.records[-1].machine["cpu_model"] == "Cortex-A76"
    assert merged.interrupted is True
    assert merged.eval_set == local.eval_set
    assert [part["settings"] for part in merged.settings["merged_from"]] == [
        local.settings, board.settings]
