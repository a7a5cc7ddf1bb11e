"""Size and accuracy of the demo model per shipped target, as Markdown (for the README).

    .venv/bin/python benchmarks/targets_table.py [DEMO_OUTPUT_DIR]

Converts `DEMO_OUTPUT_DIR/fp32` (FP32 targets) and `DEMO_OUTPUT_DIR/int8` (INT8 targets),
then runs every artifact this machine can run on the full 10k MNIST test set.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import quantkit  # noqa: F401 - before paddle (zlib)
from quantkit.datasets import mnist
from quantkit.errors import QuantkitError
from quantkit.targets import adapter_for
from quantkit.targets.convert import convert, open_artifact
from quantkit.targets.profile import shipped_profiles


def top1(predictor, data, batch: int = 500) -> float:
    hits = 0
    for start in range(0, len(data), batch):
        (logits,) = predictor.run({"image": data.images[start:start + batch]})
        hits += int((logits.argmax(1) == data.labels[start:start + batch, 0]).sum())
    return hits / len(data)


def main(demo_dir: Path) -> None:
    test = mnist.load("test")
    rows, fp32_size = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for profile in shipped_profiles():
            source = demo_dir / ("int8" if profile.precision == "int8" else "fp32")
            try:
                artifact = convert(source, profile, Path(scratch) / profile.name)
            except QuantkitError as exc:
                rows.append((profile, None, f"not converted: {exc}"))
                continue
            availability = adapter_for(profile.backend).availability(profile)
            accuracy = (f"{top1(open_artifact(artifact.folder), test):.2%}"
                        if availability.can_run else f"not run here ({profile.device})")
            family = profile.name.rsplit("-", 1)[0]
            if profile.precision == "fp32":
                fp32_size[family] = artifact.size_bytes
            rows.append((profile, (artifact.files, artifact.size_bytes), accuracy))
    print("| target | precision | files | size | vs FP32 | top-1 (10k) |")
    print("|---|---|---|---|---|---|")
    for profile, artifact, accuracy in rows:
        if artifact is None:
            print(f"| {profile.name} | {profile.precision} | | | | {accuracy} |")
            continue
        files, size = artifact
        base = fp32_size.get(profile.name.rsplit("-", 1)[0])
        ratio = f"{size / base:.2f}x" if base else ""
        print(f"| {profile.name} | {profile.precision} | {', '.join(files)} | "
              f"{size / 1e6:.2f} MB | {ratio} | {accuracy} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output"))
