"""Calibration settings: one frozen dataclass, the single source of truth for defaults.

Defaults are PaddleSlim 2.6's *code* defaults (its docs drifted: they say batch_size=16,
algo='KL'); `quantkit.quant.quant_post_static` reads them from `DEFAULTS`. The command line
(`calibrate`, `analyze`, `run`, `demo`) calibrates on batches of real rows instead of
PaddleSlim's one sample at a time: `COMMAND_LINE` is that variant, and every command's
defaults and help read it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from quantkit.calibration.algorithms import Algorithm
from quantkit.errors import QuantkitError
from quantkit.suggest import did_you_mean

ALGOS = tuple(str(member) for member in Algorithm)
ROUND_TYPES = ("round", "adaround")
ACTIVATION_QUANTIZE_TYPES = ("range_abs_max", "moving_average_abs_max", "abs_max")
WEIGHT_QUANTIZE_TYPES = ("abs_max", "channel_wise_abs_max")
DEPLOY_BACKENDS = (None, "tensorrt", "mkldnn", "arm")
DEFAULT_QUANTIZABLE_OP_TYPES = ("conv2d", "depthwise_conv2d", "conv2d_transpose",
                                "mul", "matmul", "matmul_v2")


def _one_of(name: str, value, allowed) -> None:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        hint = did_you_mean(value, [a for a in allowed if a is not None], n=2, cutoff=0.5,
                            ignore_case=True)
        raise QuantkitError(f"unknown {name} {value!r}{hint}: choose one of {shown}")


@dataclass(frozen=True)
class CalibrationConfig:
    """How to compute scales and write the quantized program (PaddleSlim's knobs)."""

    batch_size: int = 1
    batch_nums: int | None = None
    algo: Algorithm = Algorithm.HIST
    round_type: str = "round"
    hist_percent: float = 0.9999
    bias_correction: bool = False
    quantizable_op_type: tuple[str, ...] = DEFAULT_QUANTIZABLE_OP_TYPES
    is_full_quantize: bool = False
    weight_bits: int = 8
    activation_bits: int = 8
    activation_quantize_type: str = "range_abs_max"
    weight_quantize_type: str = "channel_wise_abs_max"
    optimize_model: bool = False
    onnx_format: bool = True
    skip_tensor_list: tuple[str, ...] = field(default_factory=tuple)
    deploy_backend: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "algo", Algorithm.parse(self.algo, "algo"))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise QuantkitError(f"calibration batch size must be a whole number >= 1, got "
                                f"{self.batch_size!r}")
        if self.batch_nums is not None and (isinstance(self.batch_nums, bool) or not
                                            isinstance(self.batch_nums, int)
                                            or self.batch_nums < 1):
            raise QuantkitError(f"calibration batches (batch_nums) must be a whole number "
                                f">= 1 or None, got {self.batch_nums!r}")
        _one_of("round_type", self.round_type, ROUND_TYPES)
        _one_of("activation_quantize_type", self.activation_quantize_type,
                ACTIVATION_QUANTIZE_TYPES)
        _one_of("weight_quantize_type", self.weight_quantize_type, WEIGHT_QUANTIZE_TYPES)
        _one_of("deploy_backend", self.deploy_backend, DEPLOY_BACKENDS)
        if not (isinstance(self.hist_percent, (int, float)) and 0.0 < self.hist_percent <= 1.0):
            raise QuantkitError(f"hist_percent must be in (0, 1], got {self.hist_percent}")
        for name in ("weight_bits", "activation_bits"):
            bits = getattr(self, name)
            if not 2 <= bits <= 16:
                raise QuantkitError(f"{name} must be between 2 and 16, got {bits}")
        if self.weight_bits != self.activation_bits:
            raise QuantkitError("weight_bits and activation_bits must be equal in Paddle's "
                                f"PTQ passes (got {self.weight_bits} and {self.activation_bits})")

    @classmethod
    def from_kwargs(cls, **kwargs) -> "CalibrationConfig":
        """Build from PaddleSlim-style keyword arguments (lists become tuples)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise QuantkitError(f"unknown calibration setting(s): {', '.join(unknown)}")
        for name in ("quantizable_op_type", "skip_tensor_list"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name] or ())
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULTS = CalibrationConfig()
COMMAND_LINE = CalibrationConfig(batch_size=32, batch_nums=10)
"""The command line's calibration: 10 batches of 32 rows, PaddleSlim's algorithm (hist)."""
