"""Measure that a translated model computes what the PIR original computes.

The PIR original runs with Paddle 3 (the side env's python), the translation with Paddle
2.6.2 (the main env's python), each in its own subprocess (``run_model.py`` by path: the
side env does not have quantkit installed),
on the same seeded batch. ``check_equivalence`` refuses (PirTransError) unless, for every
output, max |a - b| <= rtol * range + atol, where range = max - min of the PIR output.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from quantkit.pir.errors import PirTransError
from quantkit.pir.pirjson import read_program

RUN_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_model.py")


@dataclass(frozen=True)
class Equivalence:
    max_abs_diff: float      # over all outputs
    output_range: float      # max - min of the PIR outputs (all outputs together)
    tolerance: float         # the bound applied to the worst output
    outputs: tuple           # ((name, shape, max_abs_diff, range), ...) per output
    input_shapes: tuple      # ((feed name, shape), ...)
    runner: str              # "predictor" (paddle.inference) or "executor"
    paddle_versions: tuple   # (PIR side, legacy side)


def feed_specs(json_path):
    """((name, shape, dtype), ...) of a PIR program's feeds, in feed order."""
    prog = read_program(json_path)
    out = []
    for op in prog.ops:
        if op.name in ("pd_op.data", "pd_op.feed"):
            t = prog.types[op.results[0]]
            out.append((op.attrs["name"].value, tuple(t.shape), t.dtype))
    return tuple(out)


def default_shapes(specs, batch, dynamic_dim):
    """{feed: full shape} with dim 0 = ``batch`` and every other dynamic dim ``dynamic_dim``."""
    return {name: [(batch if i == 0 else dynamic_dim) if s == -1 else s
                   for i, s in enumerate(shape)]
            for name, shape, _ in specs if -1 in shape}


def make_inputs(specs, shapes=None, batch=2, seed=0):
    """Seeded inputs for ``specs``; -1 dims from ``shapes[name]`` or, for dim 0, ``batch``."""
    import numpy as np
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    feeds = {}
    for name, shape, dtype in specs:
        if name in shapes:
            shp = tuple(shapes[name])
            if len(shp) != len(shape) or any(s != -1 and s != g for s, g in zip(shape, shp)):
                raise PirTransError(f"shape {list(shp)} given for feed {name} does not fit "
                                    f"its declared shape {list(shape)}")
        else:
            shp = tuple(batch if (s == -1 and i == 0) else s for i, s in enumerate(shape))
            if any(s == -1 for s in shp):
                raise PirTransError(f"feed {name} has dynamic dims {list(shape)}: give its "
                                    f"full shape in shapes={{'{name}': [...]}}")
        if dtype.startswith("float"):
            feeds[name] = rng.standard_normal(shp).astype(dtype)
        elif dtype == "bool":
            feeds[name] = rng.integers(0, 2, shp).astype(bool)
        else:
            feeds[name] = rng.integers(0, 10, shp).astype(dtype)
    return feeds


def _run(python, model, params, inputs, outputs, runner, ir_optim, timeout):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the side env must not see the main env's packages
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [os.fspath(python), RUN_MODEL, model, params, inputs, outputs,
           "--runner", runner] + (["--ir-optim"] if ir_optim else [])
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise PirTransError(f"cannot run {python}") from None
    except subprocess.TimeoutExpired:
        raise PirTransError(f"running {model} with {python} took over {timeout}s") from None
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        raise PirTransError(f"running {model} with {python} failed: "
                            f"{lines[-1] if lines else 'exit code %d' % r.returncode}")


def check_equivalence(json_path, params_path, legacy_dir, shapes=None, batch=2, seed=0,
                      rtol=1e-5, atol=1e-6, runner="predictor", ir_optim=False,
                      paddle3_python=None, paddle2_python=None, timeout=600,
                      inputs=None) -> Equivalence:
    """Run the PIR model (Paddle 3) and ``legacy_dir/model.pdmodel`` (Paddle 2.6.2) on one
    seeded batch (or on ``inputs``, {feed name: array}) and compare; PirTransError if any
    output differs by more than rtol * (its range) + atol."""
    import numpy as np
    if inputs is not None:
        feeds = {k: np.asarray(v) for k, v in inputs.items()}
    else:
        feeds = make_inputs(feed_specs(json_path), shapes, batch, seed)
    legacy_model = os.path.join(os.fspath(legacy_dir), "model.pdmodel")
    legacy_params = os.path.join(os.fspath(legacy_dir), "model.pdiparams")
    if paddle3_python is None:
        from quantkit import sideenv
        paddle3_python = sideenv.require("paddle3")
    with tempfile.TemporaryDirectory(prefix="quantkit-pir-eq-") as tmp:
        inp = os.path.join(tmp, "in.npz")
        np.savez(inp, **feeds)
        o3, o2 = os.path.join(tmp, "pir.npz"), os.path.join(tmp, "legacy.npz")
        _run(paddle3_python, os.fspath(json_path),
             os.fspath(params_path), inp, o3, runner, ir_optim, timeout)
        _run(paddle2_python or sys.executable, legacy_model, legacy_params, inp, o2,
             runner, ir_optim, timeout)
        with np.load(o3) as a, np.load(o2) as b:
            names_a, names_b = list(a["__names__"]), list(b["__names__"])
            outs_a = [a[f"out_{i}"] for i in range(len(names_a))]
            outs_b = [b[f"out_{i}"] for i in range(len(names_b))]
            versions = (str(a["__paddle__"]), str(b["__paddle__"]))
    if len(outs_a) != len(outs_b):
        raise PirTransError(f"{legacy_model}: {len(outs_b)} outputs, the PIR model has "
                            f"{len(outs_a)}")
    if [str(n) for n in names_a] != [str(n) for n in names_b]:
        raise PirTransError(f"{legacy_model}: output names {[str(n) for n in names_b]}, the "
                            f"PIR model's {[str(n) for n in names_a]}")
    per, worst, worst_tol, lo, hi = [], 0.0, 0.0, np.inf, -np.inf
    bad = []
    for name, x, y in zip(names_a, outs_a, outs_b):
        if x.shape != y.shape:
            raise PirTransError(f"{legacy_model}: output {name} has shape {list(y.shape)}, "
                                f"the PIR model's {list(x.shape)}")
        xf, yf = x.astype(np.float64), y.astype(np.float64)
        if not (np.isfinite(xf).all() and np.isfinite(yf).all()):
            if not np.array_equal(np.isfinite(xf), np.isfinite(yf)):
                bad.append(f"{name}: non-finite values differ")
            mask = np.isfinite(xf) & np.isfinite(yf)
            xf, yf = xf[mask], yf[mask]
        diff = float(np.abs(xf - yf).max()) if xf.size else 0.0
        rng_ = float(xf.max() - xf.min()) if xf.size else 0.0
        tol = rtol * rng_ + atol
        if xf.size:
            lo, hi = min(lo, float(xf.min())), max(hi, float(xf.max()))
        per.append((str(name), tuple(x.shape), diff, rng_))
        if diff > tol:
            bad.append(f"{name}: max |diff| {diff:.3g} > {tol:.3g} (range {rng_:.3g})")
        if diff >= worst:
            worst, worst_tol = diff, tol
    if bad:
        raise PirTransError(f"{legacy_model} is not equivalent to {os.fspath(json_path)}: "
                            + "; ".join(bad))
    return Equivalence(max_abs_diff=worst, output_range=float(hi - lo) if per else 0.0,
                       tolerance=worst_tol, outputs=tuple(per),
                       input_shapes=tuple((n, tuple(v.shape)) for n, v in feeds.items()),
                       runner=runner, paddle_versions=versions)
