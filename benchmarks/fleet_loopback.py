"""A two-node fleet on 127.0.0.1, measured end to end: the README's Fleet table.

    .venv/bin/python benchmarks/fleet_loopback.py --mobilenet demo-output/fp32 --out runs/fleet

Starts a head and two nodes (`ray start --block`, by PID; token in a temporary folder):
node-onednn offers the Paddle Inference targets, node-ort the ONNX Runtime ones. The zoo
is the demo's MobileNetV1 (`make demo`) on MNIST and the small test CNN
(tests/data/paddle3) on the same images; both nodes share this machine's cores, which
the driver accounts for by never measuring on two nodes of one address at once.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from quantkit.benchmark.jobs import MeasureSettings
from quantkit.fleet.cluster import LocalCluster
from quantkit.fleet.driver import FleetSettings, run_fleet
from quantkit.fleet.node import NodeSpec

ONEDNN = ("intel-onednn-int8", "intel-onednn-fp32", "intel-cpu-fp32")
ORT = ("onnxruntime-int8", "onnxruntime-fp32")
TEST_CNN = Path(__file__).resolve().parent.parent / "tests" / "data" / "paddle3"


def zoo_text(mobilenet: Path) -> str:
    targets = "[" + ", ".join(f'"{t}"' for t in (*ONEDNN[:2], *ORT)) + "]"
    return f"""
[[model]]
name = "mobilenetv1-x0.5"
model = "{mobilenet.absolute()}"
model_filename = "fp32.pdmodel"
params_filename = "fp32.pdiparams"
task = "classification"
calib = "mnist-train"
eval = "mnist"
targets = {targets}

[[model]]
name = "test-cnn"
model = "{TEST_CNN}"
task = "classification"
calib = "mnist-train"
eval = "mnist"
targets = {targets}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mobilenet", type=Path, required=True,
                        help="the demo's FP32 model folder (fp32.pdmodel/.pdiparams)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    zoo = args.out / "zoo.toml"
    zoo.write_text(zoo_text(args.mobilenet))
    started = time.monotonic()
    with LocalCluster.start(NodeSpec(name="head"), (
            NodeSpec(name="node-onednn", targets=ONEDNN),
            NodeSpec(name="node-ort", targets=ORT))) as cluster:
        print(f"cluster up in {time.monotonic() - started:.1f} s at {cluster.address}")
        settings = FleetSettings(measure=MeasureSettings(batch_sizes=(1, 64),
                                                         iterations=args.iterations))
        results = run_fleet(zoo, cluster.address, args.out / "run", settings, force=True,
                            token_path=cluster.token_path, on_event=print)
    print(f"total {time.monotonic() - started:.1f} s, {len(results.records)} records")
    print((args.out / "run" / "results.md").read_text())
    print((args.out / "run" / "summary.md").read_text())


if __name__ == "__main__":
    main()
