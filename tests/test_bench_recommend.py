""""Which target should I ship?" on hand-made results with known answers."""
from __future__ import annotations

import json

import pytest

from quantkit.benchmark import report
from quantkit.benchmark.recommend import DEFAULT_MAX_DROP, quality, recommend
from quantkit.benchmark.results import Accuracy, BenchRecord, BenchResults
from accuracies import agreement_accuracy, top1_accuracy

MACHINE = {"hostname": "box", "cpu_model": "EPYC", "isa_flags": ["avx2", "avx512_vnni"]}


def _record(target: str, precision: str, p50: float, top1: float | None, batch: int = 1,
            host: str = "local", device: str = "cpu", reference: bool = False,
            status: str = "ok") -> BenchRecord:
    accuracy = None
    if top1 is not None:
        accuracy = top1_accuracy(1000, top1, 0.95,
                                 0.0 if reference else round((0.95 - top1) * 100, 6))
    return BenchRecord(target, "onnxruntime", precision, device, status, host=host,
                       batch_size=batch, latency_ms={"p50_ms": p50} if status == "ok" else None,
                       accuracy=accuracy,
                       machine=dict(MACHINE, hostname="box" if host == "local" else host))


def test_the_fastest_target_within_budget_is_chosen():
    results = BenchResults(records=[
        _record("fp32", "fp32", 4.0, 0.95, reference=True),
        _record("fast-but-wrong", "int8", 1.0, 0.90),  # 5 points lost: over budget
        _record("good-int8", "int8", 2.0, 0.947),  # 0.3 points: within 1
        _record("slow-int8", "int8", 3.0, 0.95),
    ])
    (answer,) = recommend(results, max_drop=1.0)
    assert answer.target == "good-int8" and answer.drop_points == pytest.approx(0.3)
    assert answer.int8_pays is True
    assert "ship good-int8" in answer.summary and "2.00x faster" in answer.summary
    assert {c.target for c in answer.candidates if c.pareto} == {"fast-but-wrong", "good-int8",
                                                                 "slow-int8"}
    assert not [c for c in answer.candidates if c.target == "fp32" and c.pareto]  # slower, same


def test_int8_that_does_not_pay_is_said_plainly():
    results = BenchResults(records=[_record("fp32", "fp32", 0.10, 0.95, reference=True),
                                    _record("int8", "int8", 0.14, 0.95)])
    (answer,) = recommend(results)
    assert answer.target == "fp32" and answer.int8_pays is False
    assert "INT8 does not pay here" in answer.summary and "0.14" in answer.summary


def test_a_budget_no_target_keeps_has_no_answer():
    results = BenchResults(records=[_record("int8", "int8", 1.0, 0.80)])
    (answer,) = recommend(results, max_drop=0.5)
    assert answer.target is None and "no target kept the 0.5-point budget" in answer.summary


def test_answers_are_per_machine_and_batch_size_and_skip_what_did_not_run():
    results = BenchResults(records=[
        _record("a", "fp32", 1.0, 0.95, batch=1, reference=True),
        _record("a", "fp32", 9.0, 0.95, batch=64, reference=True),
        _record("b", "int8", 5.0, 0.95, batch=64),
        _record("a", "fp32", 2.0, 0.95, host="pi", reference=True),
        _record("c", "int8", 0.1, 0.95, status="failed"),
    ])
    answers = {(a.machine, a.batch_size): a.target for a in recommend(results)}
    assert answers == {("box", 1): "a", ("box", 64): "b", ("pi", 1): "a"}


def test_without_labels_agreement_with_fp32_is_the_quality():
    record = BenchRecord("x", "onnxruntime", "int8", "cpu", "ok", batch_size=1,
                         latency_ms={"p50_ms": 1.0},
                         accuracy=agreement_accuracy(10, 0.992))
    assert quality(record) == ("agreement with FP32's top class", pytest.approx(99.2),
                               pytest.approx(0.8))


def test_results_json_and_markdown_carry_the_answer(tmp_path):
    results = BenchResults(records=[_record("fp32", "fp32", 4.0, 0.95, reference=True),
                                    _record("int8", "int8", 2.0, 0.949)],
                           settings={"max_drop": 0.05})  # the run's own budget wins
    paths = report.write_reports(results, tmp_path)
    saved = json.loads(paths["json"].read_text())["recommendation"]
    assert saved[0]["target"] == "fp32" and saved[0]["max_drop"] == 0.05
    assert "Which target to ship" in paths["markdown"].read_text()
    report.write_reports(results, tmp_path, max_drop=DEFAULT_MAX_DROP)
    assert json.loads(paths["json"].read_text())["recommendation"][0]["target"] == "int8"
