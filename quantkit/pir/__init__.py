"""Paddle 3 PIR models (`*.json` + `*.pdiparams`) translated back into legacy programs.

Paddle 3 saves inference models as PIR json by default; Paddle Lite, paddle2onnx's INT8
export and Paddle core's PTQ read only legacy ProgramDescs, and no official route leads
back. `translate` parses the json in pure Python and rebuilds the program with Paddle
2.6.2's own op definitions, one table entry per PIR op (`optable`); `equivalence` runs the
PIR original with Paddle 3 (in its side environment) and the translation with Paddle 2.6.2
on the same batch; `cache` keeps each translation by the json's sha256, so a model is
translated and checked once and everything downstream is the legacy path.
"""
