"""Make the Paddle 3.x legacy-format test model in this folder (run with Paddle 3.x).

    FLAGS_enable_pir_api=0 python tests/data/paddle3/make_model.py   # with paddlepaddle 3.x

Writes model.pdmodel + model.pdiparams (a small untrained CNN for `image` [N, 1, 28, 28],
saved in the legacy ProgramDesc protobuf format, not PIR JSON) and reference.npz (4 fixed
input images, the logits Paddle 3 computed for them, and the Paddle version). quantkit
itself never imports Paddle 3: these files let its tests check models saved by Paddle 3.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["FLAGS_enable_pir_api"] = "0"  # legacy IR: must be set before importing paddle

import numpy as np  # noqa: E402
import paddle  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 20261


def build(main, startup):
    with paddle.static.program_guard(main, startup):
        image = paddle.static.data("image", [None, 1, 28, 28], "float32")
        x = paddle.static.nn.conv2d(image, 16, 3, stride=2, padding=1, bias_attr=False)
        x = paddle.static.nn.batch_norm(x, act="relu")
        x = paddle.static.nn.conv2d(x, 16, 3, padding=1, groups=16, bias_attr=False)
        x = paddle.static.nn.batch_norm(x, act="relu")
        x = paddle.static.nn.conv2d(x, 32, 1, act="relu")
        x = paddle.nn.functional.adaptive_avg_pool2d(x, 1)
        x = paddle.flatten(x, 1)
        logits = paddle.static.nn.fc(x, 10)
    return image, logits


def fill_parameters(program, scope, rng):
    """Fixed-seed values for every parameter (and non-trivial batch-norm statistics)."""
    for var in sorted(program.list_vars(), key=lambda v: v.name):
        if not var.persistable or var.name in ("feed", "fetch"):
            continue
        tensor = scope.find_var(var.name).get_tensor()
        shape = np.array(tensor).shape
        if var.name.endswith(".w_2"):  # batch-norm moving variance: positive
            value = rng.uniform(0.5, 1.5, shape)
        elif var.name.endswith(".w_1"):  # batch-norm moving mean
            value = rng.uniform(-0.2, 0.2, shape)
        elif "batch_norm" in var.name and var.name.endswith(".w_0"):  # scale
            value = rng.uniform(0.8, 1.2, shape)
        elif len(shape) >= 2:  # conv / fc weights: He-style scale
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        else:  # biases, batch-norm shift
            value = rng.uniform(-0.1, 0.1, shape)
        tensor.set(value.astype("float32"), paddle.CPUPlace())


def reference_images() -> np.ndarray:
    """4 fixed images in [-1, 1]: noise over a different stripe pattern each (so logits differ)."""
    rng = np.random.RandomState(SEED)
    rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    images = []
    for k in range(4):
        angle = k * np.pi / 4
        pattern = np.sin((rows * np.cos(angle) + cols * np.sin(angle)) * (k + 1) * 0.35)
        images.append(0.7 * pattern + 0.3 * rng.uniform(-1.0, 1.0, (28, 28)))
    return np.clip(np.stack(images)[:, None], -1.0, 1.0).astype("float32")


def main() -> int:
    paddle.enable_static()
    with paddle.pir_utils.OldIrGuard():
        main_program, startup = paddle.static.Program(), paddle.static.Program()
        image, logits = build(main_program, startup)
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            fill_parameters(main_program, scope, np.random.RandomState(SEED))
            paddle.static.save_inference_model(
                str(HERE / "model"), [image], [logits], exe,
                program=main_program.clone(for_test=True))

    model_bytes = (HERE / "model.pdmodel").read_bytes()
    if model_bytes.lstrip()[:1] == b"{":
        raise SystemExit("model.pdmodel is PIR JSON, not a legacy ProgramDesc")
    desc = paddle.base.proto.framework_pb2.ProgramDesc()
    desc.ParseFromString(model_bytes)
    op_types = [op.type for op in desc.blocks[0].ops]

    images = reference_images()

    # Reference 1: the static executor on the saved files.
    with paddle.pir_utils.OldIrGuard():
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, feeds, fetches = paddle.static.load_inference_model(
                str(HERE / "model"), exe)
            (from_executor,) = exe.run(program, feed={feeds[0]: images}, fetch_list=fetches)

    # Reference 2: Paddle Inference (plain CPU kernels) on the saved files.
    config = paddle.inference.Config(str(HERE / "model.pdmodel"), str(HERE / "model.pdiparams"))
    config.disable_onednn()
    predictor = paddle.inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(images.shape))
    handle.copy_from_cpu(images)
    predictor.run()
    from_inference = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()

    agreement = float(np.abs(from_executor - from_inference).max())
    if agreement > 1e-5:
        raise SystemExit(f"executor and Paddle Inference disagree: max abs diff {agreement}")
    np.savez(HERE / "reference.npz", images=images, logits=from_executor.astype("float32"),
             paddle_version=np.array(paddle.__version__))

    print(f"paddle {paddle.__version__}; ops: {', '.join(op_types)}")
    print(f"executor vs inference max abs diff: {agreement:.3g}")
    print(f"logits:\n{from_executor}")
    total = 0
    for name in ("model.pdmodel", "model.pdiparams", "reference.npz", "make_model.py"):
        size = (HERE / name).stat().st_size
        total += size
        print(f"{name}: {size} bytes")
    print(f"total: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
