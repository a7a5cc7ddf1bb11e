"""Defaults have one source (CalibrationConfig) and match PaddleSlim 2.6's code."""
from __future__ import annotations

import inspect

import pytest

from quantkit.calibration.config import CalibrationConfig
from quantkit.errors import QuantkitError
from quantkit.quant import quant_post_static

PADDLESLIM_2_6_SIGNATURE = (
    "executor", "model_dir", "quantize_model_path", "batch_generator", "sample_generator",
    "data_loader", "model_filename", "params_filename", "save_model_filename",
    "save_params_filename", "batch_size", "batch_nums", "scope", "algo", "round_type",
    "hist_percent", "bias_correction", "quantizable_op_type", "is_full_quantize",
    "weight_bits", "activation_bits", "activation_quantize_type", "weight_quantize_type",
    "optimize_model", "onnx_format", "skip_tensor_list", "deploy_backend")


def test_signature_is_paddleslims():
    assert tuple(inspect.signature(quant_post_static).parameters) == PADDLESLIM_2_6_SIGNATURE


def test_function_defaults_come_from_the_dataclass():
    defaults = CalibrationConfig()
    parameters = inspect.signature(quant_post_static).parameters
    for name in ("batch_size", "batch_nums", "algo", "round_type", "hist_percent",
                 "bias_correction", "is_full_quantize", "weight_bits", "activation_bits",
                 "activation_quantize_type", "weight_quantize_type", "optimize_model",
                 "onnx_format", "deploy_backend"):
        assert parameters[name].default == getattr(defaults, name), name
    assert tuple(parameters["quantizable_op_type"].default) == defaults.quantizable_op_type
    # PaddleSlim 2.6's code defaults (its docs say batch_size=16, algo='KL')
    assert (defaults.algo, defaults.batch_size, defaults.hist_percent, defaults.onnx_format) \
        == ("hist", 1, 0.9999, True)


@pytest.mark.parametrize("kwargs, message", [
    ({"algo": "kl"}, "unknown algo 'kl'"),
    ({"round_type": "floor"}, "unknown round_type"),
    ({"weight_quantize_type": "per_tensor"}, "unknown weight_quantize_type"),
    ({"hist_percent": 1.5}, "hist_percent must be in"),
    ({"weight_bits": 4}, "must be equal"),
    ({"alg": "hist"}, "unknown calibration setting"),
])
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(QuantkitError, match=message):
        CalibrationConfig.from_kwargs(**kwargs)
