"""Calibration observers: one small numpy class per algorithm, in PyTorch's observer style.

An observer RECORDS statistics batch by batch (`observe(x)`) and COMPUTES the scale once at
the end (`scale()`), so every algorithm is unit-testable on plain arrays, without Paddle.

Scale convention (what the driver must store)
---------------------------------------------
`scale()` returns the clipping threshold T: the largest magnitude the int8 tensor
represents, in the tensor's own units. It is exactly what Paddle core 2.6.2 keeps in
`_quantized_threshold` / `_quantized_var_threshold` and writes into `<var>@scale` and
`<var>.quant_dequant@scale` (paddle/static/quantization/post_training_quantization.py
:1286-1298, `np.array([T], dtype=np.float32)`); the quant ops then compute
`q = clip(round(x / T * 127), -128, 127)` for 8 bits (onnx_format; utils.py:135-172 has
both conventions, the other clips x to [-T, T] first). It is NOT T / 127.
A per-channel observer returns a 1-D float64 array, one T per output channel (core stores a
list of floats; the ONNX-format passes read it back as a list, quantization_pass.py:3232-3242).
A tensor that was all zeros gets T = EPSILON, core's own stand-in for a zero scale
(utils.py:149 and :165, quantization_pass.py:1360): never 0, never a division by zero.

Protocol
--------
`observe(x)` takes one batch (any real dtype; ints are widened to float64). Empty batches
are counted but ignored, as core does (`_zero_size_var_names`); `has_data` says whether any
value was seen, and a driver skips quantizing a tensor without data, as core does. NaN or Inf
raises `QuantkitError` naming the batch index (0-based, counting this observer's batches).
`passes` is 1, or 2 for observers that need a range pass first (core's exact hist and KL):
the driver then feeds every batch to `observe(x)`, calls `end_pass()`, feeds every batch
again and calls `end_pass()` again; `scale()` refuses before both passes are closed. Only
two-pass observers have `end_pass()` (the search module's KL follows the same convention).

The factory `create_observer(algo, **options)` knows PaddleSlim's names: "abs_max", "avg",
"min_max", "hist" (core's exact two passes, `basic`), "mse", "emd", "KL" (`search`,
imported on demand), plus "channel_wise_abs_max" for weights and "hist-one-pass" (a
one-pass histogram with exact regrowth). Which observer, with which options, measures an
activation during calibration is `quantkit.calibration.algorithms`' business.
"""
from quantkit.calibration.observers.base import (EPSILON, REGISTRY, Observer, ObserverBase,
                                                 TwoPassObserver, create_observer, known_algos,
                                                 positive, register_observer)
# Importing `basic` registers its observers; the names are re-exported for convenience.
from quantkit.calibration.observers.basic import (
    AbsMaxObserver, AvgObserver, HistObserver, MinMaxObserver, PerChannelAbsMaxObserver,
    TwoPassHistObserver, weight_quant_axis)

__all__ = ["EPSILON", "Observer", "TwoPassObserver", "ObserverBase", "REGISTRY",
           "register_observer", "create_observer", "known_algos", "positive",
           "AbsMaxObserver", "AvgObserver", "HistObserver", "MinMaxObserver",
           "PerChannelAbsMaxObserver", "TwoPassHistObserver", "weight_quant_axis"]
