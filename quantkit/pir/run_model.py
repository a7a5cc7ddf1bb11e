"""Run one inference model on inputs from an .npz and save its outputs to an .npz.

    python run_model.py MODEL_FILE PARAMS_FILE INPUTS.npz OUTPUTS.npz
                        [--runner predictor|executor] [--ir-optim] [--threads N]

MODEL_FILE is a PIR ``*.json`` (run it with Paddle 3) or a legacy ``*.pdmodel`` (any Paddle).
It imports whatever ``paddle`` the interpreter has and nothing of quantkit (the side env does
not have quantkit installed): quantkit.pir.equivalence calls it once with
the Paddle 3 side env's python and once with the main env's (Paddle 2.6.2). The outputs npz
holds ``out_<i>`` arrays and ``__names__`` (the output names, in order). Exit code 0 on
success; otherwise the last stderr line says why.
"""
from __future__ import annotations

import argparse
import os
import sys


def _predictor(model, params, feeds, ir_optim, threads):
    import paddle.inference as pi
    config = pi.Config(model, params)
    config.disable_gpu()
    config.disable_mkldnn()  # plain CPU kernels on both sides: compare semantics, not fusions
    config.switch_ir_optim(ir_optim)
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    pred = pi.create_predictor(config)
    for name in pred.get_input_names():
        if name not in feeds:
            raise SystemExit(f"input {name} missing from the inputs npz")
        h = pred.get_input_handle(name)
        h.reshape(list(feeds[name].shape))
        h.copy_from_cpu(feeds[name])
    pred.run()
    names = pred.get_output_names()
    return names, [pred.get_output_handle(n).copy_to_cpu() for n in names]


def _executor(model, params, feeds):
    import paddle
    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    d = os.path.dirname(model) or "."
    prog, feed_names, fetches = paddle.static.load_inference_model(
        d, exe, model_filename=os.path.basename(model),
        params_filename=os.path.basename(params))
    outs = exe.run(prog, feed={n: feeds[n] for n in feed_names}, fetch_list=fetches)
    names = [f"out_{i}" for i in range(len(fetches))]  # PIR values have no stable name
    import numpy as np
    return names, [np.asarray(o) for o in outs]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("params")
    ap.add_argument("inputs")
    ap.add_argument("outputs")
    ap.add_argument("--runner", choices=["predictor", "executor"], default="predictor")
    ap.add_argument("--ir-optim", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import numpy as np
    with np.load(a.inputs) as z:
        feeds = {k: z[k] for k in z.files}
    if a.runner == "predictor":
        names, outs = _predictor(a.model, a.params, feeds, a.ir_optim, a.threads)
    else:
        names, outs = _executor(a.model, a.params, feeds)
    import paddle
    np.savez(a.outputs, __names__=np.array([str(n) for n in names]),
             __paddle__=np.array(paddle.__version__),
             **{f"out_{i}": np.asarray(o) for i, o in enumerate(outs)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
