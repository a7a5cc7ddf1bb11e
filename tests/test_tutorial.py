"""PaddleSlim's PTQ tutorial, with `import quantkit as slim`, for each calibration data form.

The tutorial code is kept as written (quant_post_static call, load_inference_model, test
loop); only the data source changes to quantkit's offline MNIST. Unlike the tutorial, the
last step evaluates the *quantized* program.
"""
from __future__ import annotations

import numpy as np
import pytest

import quantkit as slim

pytestmark = pytest.mark.slow


def _top1(program, feed_names, fetch_targets, exe, images, labels) -> float:
    hits = 0
    for start in range(0, len(images), 500):
        (logits,) = exe.run(program, feed={feed_names[0]: images[start:start + 500]},
                            fetch_list=fetch_targets)
        hits += int((np.argmax(logits, axis=1) == labels[start:start + 500, 0]).sum())
    return hits / len(images)


def _batch_generator():
    data = slim.datasets.mnist.load("train", limit=320)
    for start in range(0, 320, 32):
        yield data.images[start:start + 32], data.labels[start:start + 32]


def _data_loader(place):
    """The tutorial's DataLoader (feed_list=[image, label]); only `image` is fed to PTQ."""
    import paddle

    with paddle.static.program_guard(paddle.static.Program(), paddle.static.Program()):
        image = paddle.static.data(name="image", shape=[None, 1, 28, 28], dtype="float32")
        label = paddle.static.data(name="label", shape=[None, 1], dtype="int64")
    dataset = slim.datasets.mnist.MNIST(mode="train", limit=320)
    return paddle.io.DataLoader(dataset, places=place, feed_list=[image, label],
                                drop_last=True, batch_size=32, return_list=False,
                                shuffle=False)


@pytest.mark.parametrize("data_form", ["sample_generator", "batch_generator", "data_loader"])
def test_tutorial_quantizes_and_keeps_top1(data_form, trained_model_dir, mnist_test_slice,
                                           tmp_path):
    import paddle

    paddle.enable_static()
    place = paddle.CPUPlace()
    exe = paddle.static.Executor(place)
    quantize_model_path = tmp_path / "quant_post_static_model"

    data_kwargs = {
        "sample_generator": lambda: {"sample_generator": slim.datasets.mnist.test()},
        "batch_generator": lambda: {"batch_generator": _batch_generator},
        "data_loader": lambda: {"data_loader": _data_loader(place)},
    }[data_form]()
    slim.quant.quant_post_static(
        executor=exe,
        model_dir=str(trained_model_dir),
        quantize_model_path=str(quantize_model_path),
        model_filename="fp32.pdmodel",
        params_filename="fp32.pdiparams",
        batch_nums=10,
        **data_kwargs)

    assert (quantize_model_path / "model.pdmodel").is_file()
    assert (quantize_model_path / "model.pdiparams").is_file()
    images, labels = mnist_test_slice.images, mnist_test_slice.labels

    quant_program, feed_names, fetch_targets = paddle.static.load_inference_model(
        path_prefix=str(quantize_model_path / "model"), executor=exe)
    op_types = {op.type for op in quant_program.global_block().ops}
    assert {"quantize_linear", "dequantize_linear"} <= op_types
    int8_top1 = _top1(quant_program, feed_names, fetch_targets, exe, images, labels)

    fp32_program, feed_names, fetch_targets = paddle.static.load_inference_model(
        path_prefix=str(trained_model_dir / "fp32"), executor=exe)
    assert not {"quantize_linear", "dequantize_linear"} & {
        op.type for op in fp32_program.global_block().ops}
    fp32_top1 = _top1(fp32_program, feed_names, fetch_targets, exe, images, labels)

    assert fp32_top1 > 0.5, "the shared model did not learn: the comparison would be empty"
    assert abs(int8_top1 - fp32_top1) <= 0.01, (fp32_top1, int8_top1)


def test_fake_quant_format_writes_quantize_ops(trained_model_dir, tmp_path):
    """onnx_format=False keeps float weights and writes fake_quantize ops (PaddleSlim's old form)."""
    import paddle

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    result = slim.quant.quant_post_static(
        exe, str(trained_model_dir), str(tmp_path / "q"),
        sample_generator=slim.datasets.mnist.train(), model_filename="fp32.pdmodel",
        params_filename="fp32.pdiparams", batch_nums=4, algo="abs_max", onnx_format=False)
    program, _, _ = paddle.static.load_inference_model(str(tmp_path / "q" / "model"), exe)
    op_types = {op.type for op in program.global_block().ops}
    assert any(t.startswith("fake_quantize") or t.startswith("fake_channel_wise") or
               t.startswith("fake_dequantize") for t in op_types), op_types
    assert result.batches_used == 4


def test_save_params_filename_is_honoured(trained_model_dir, tmp_path):
    import paddle

    paddle.enable_static()
    result = slim.quant.quant_post_static(
        paddle.static.Executor(paddle.CPUPlace()), str(trained_model_dir), str(tmp_path / "q"),
        sample_generator=slim.datasets.mnist.train(), model_filename="fp32.pdmodel",
        params_filename="fp32.pdiparams", batch_nums=2, algo="abs_max",
        save_model_filename="mnist_int8.pdmodel", save_params_filename="weights.pdiparams")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [
        "mnist_int8.pdmodel", "weights.pdiparams"]
    assert result.params_file == tmp_path / "q" / "weights.pdiparams"
