"""A two-node loopback fleet, measured: the README's fleet table comes from this script.

    .venv/bin/python benchmarks/fleet_loopback.py MODEL_DIR --out DIR

MODEL_DIR is the demo's FP32 model (`make demo` -> demo-output/fp32). A head and two
nodes start on 127.0.0.1 (node-a offers oneDNN, node-b ONNX Runtime), the demo model and
the PP-OCR direction classifier go through all four targets, and DIR gets the fleet's
results.json/.md and summary.md. Every Ray process is stopped by PID at the end.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from quantkit.benchmark.jobs import MeasureSettings
from quantkit.fleet.cluster import LocalCluster
from quantkit.fleet.driver import FleetSettings, run_fleet
from quantkit.fleet.node import NodeSpec

NODES = {"node-a": ("intel-onednn-int8", "intel-onednn-fp32"),
         "node-b": ("onnxruntime-int8", "onnxruntime-fp32")}
TARGETS = '["intel-onednn-int8", "intel-onednn-fp32", "onnxruntime-int8", "onnxruntime-fp32"]'


def zoo_text(model_dir: Path) -> str:
    """The demo model on MNIST and the PP-OCR classifier on its zoo crops."""
    return f'''
[[model]]
name = "mnist-mobilenet"
model = "{model_dir.resolve()}"
model_filename = "fp32.pdmodel"
params_filename = "fp32.pdiparams"
task = "classification"
calib = "mnist-train"
eval = "mnist"
targets = {TARGETS}
calib_batch_size = 32
calib_batches = 10

[[model]]
name = "ppocr-cls"
model = "rapidocr:ch_ppocr_mobile_v2_cls_infer"
task = "classification"
calib = "zoo:ppocr-cls-calib"
eval = "zoo:ppocr-cls-eval"
targets = {TARGETS}
calib_batch_size = 8
calib_batches = 8
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    zoo = args.out.parent / f"{args.out.name}.zoo.toml"
    zoo.write_text(zoo_text(args.model_dir))
    settings = FleetSettings(measure=MeasureSettings(batch_sizes=(1, 64), warmup=10,
                                                     iterations=100, timeout_s=1800))
    started = time.monotonic()
    with LocalCluster.start(NodeSpec(name="head"), tuple(
            NodeSpec(name=name, targets=targets) for name, targets in NODES.items())) as cluster:
        print(f"cluster up in {time.monotonic() - started:.1f} s at {cluster.address}")
        results = run_fleet(zoo, cluster.address, args.out, settings, force=True,
                            token_path=cluster.token_path, on_event=print)
    print(f"total {time.monotonic() - started:.1f} s, {len(results.records)} records")
    print((args.out / "results.md").read_text())
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
