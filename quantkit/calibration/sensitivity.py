"""Which layers hurt: quantize one layer at a time and compare the model's output with FP32.

Why this measure: a layer's own activation error says little about the answer the model
gives (errors grow or vanish downstream), and quantizing everything but one layer mixes
all the others' errors in. Quantizing ONLY layer L (every other layer in float) isolates
L's effect on what users care about: the model's output. Per layer it records the output
SQNR and cosine against FP32, the argmax agreement and, with labels, the top-1 drop.
Layers are ranked worst first by output SQNR (continuous, so small eval sets still rank).
The quantized programs run as simulated quantization (QDQ ops on float kernels).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

import numpy as np

from quantkit.calibration.session import CalibrationSession
from quantkit.metrics import argmax_agreement, cosine_mean, sqnr_db, top1


@dataclass(frozen=True)
class OutputError:
    """How far one variant's outputs are from FP32's on the same rows."""

    sqnr_db: float
    cosine: float
    agreement: float
    top1: float | None = None
    top1_drop_points: float | None = None

    @classmethod
    def measure(cls, outputs: np.ndarray, reference: np.ndarray,
                labels: np.ndarray | None = None) -> "OutputError":
        accuracy = drop = None
        if labels is not None:
            accuracy = top1(outputs, labels)
            drop = round((top1(reference, labels) - accuracy) * 100, 4)
        return cls(sqnr_db(outputs, reference), cosine_mean(outputs, reference),
                   argmax_agreement(outputs, reference), accuracy, drop)

    def drop_points(self) -> float:
        """The default drop a budget checks: top-1 points with labels, else disagreement
        (a budget on a detection or recognition set checks its task metric instead)."""
        if self.top1_drop_points is not None:
            return self.top1_drop_points
        return round((1.0 - self.agreement) * 100, 4)


@dataclass(frozen=True)
class LayerSensitivity:
    layer: str  # the weight name: what a skip_tensor_list entry names
    op_type: str
    output: str
    error: OutputError


@dataclass
class SensitivityReport:
    """Every layer's isolated effect, worst first, plus the fully quantized model's."""

    model: str
    algo: str
    rows: int
    labelled: bool
    fp32_top1: float | None
    all_layers: OutputError
    layers: list[LayerSensitivity] = field(default_factory=list)

    def ranked_layers(self) -> list[str]:
        return [entry.layer for entry in self.layers]

    def to_dict(self) -> dict:
        return asdict(self)


def analyze(session: CalibrationSession, inputs: Mapping[str, np.ndarray],
            labels: np.ndarray | None = None,
            on_layer: Callable[[int, int, str], None] = lambda done, total, name: None
            ) -> SensitivityReport:
    """Quantize each layer of `session` alone and measure the outputs on `inputs`."""
    reference = session.outputs(inputs, quantized=False)
    every_layer = [layer.weight for layer in session.layers]
    full = OutputError.measure(session.outputs(inputs, skip=()), reference, labels)
    report = SensitivityReport(
        model=str(session.model.model_file), algo=session.config.algo,
        rows=int(reference.shape[0]), labelled=labels is not None,
        fp32_top1=top1(reference, labels) if labels is not None else None, all_layers=full)
    for index, layer in enumerate(session.layers):
        on_layer(index, len(session.layers), layer.weight)
        others = [name for name in every_layer if name != layer.weight]
        outputs = session.outputs(inputs, skip=others)
        report.layers.append(LayerSensitivity(layer.weight, layer.op_type, layer.output,
                                              OutputError.measure(outputs, reference, labels)))
    report.layers.sort(key=lambda entry: (entry.error.sqnr_db, -entry.error.drop_points()))
    return report
