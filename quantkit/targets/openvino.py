"""Intel CPUs through OpenVINO: FP32 from the Paddle model, INT8 from quantkit's own scales.

Why FakeQuantize ops from quantkit's scales, not the QDQ ONNX file
------------------------------------------------------------------
One calibration serves every target. OpenVINO 2026.4 reads the QDQ ONNX that paddle2onnx
writes of a calibrated model, but computes it wrong where a signed int8 activation Q/DQ
meets a Concat that feeds a Conv: it saturates the dequantized value at [-128, 127]
instead of the int8 code (PP-OCRv4 det: text-map IoU 0.008 vs ONNX Runtime's 0.893 on the
same file). It also runs Paddle's Q/DQ on every Add/Mul/HardSwish output as 64 extra
fused nodes (1.2x slower than NNCF). So the INT8 artifact is built here from the
calibrated model's float twin (`qdq_program.float_twin`: Q/DQ ops removed, weights as the
QDQ program computes them), read by OpenVINO's Paddle frontend (or, for legacy ops it
cannot read such as `mul`, the twin's ONNX export), with quantkit's int8 weight codes put
back (Constant i8 -> Convert -> Multiply, OpenVINO's compressed-weight pattern) and one
FakeQuantize per quantized activation, on conv/deconv/matmul data inputs only:
levels 256 over [-128/127 T, T] (the grid Paddle's QDQ computes; levels 255 drifted 0.5%
per conv in OpenVINO), [0, T] after Relu/Sigmoid/HardSigmoid, and one shared FakeQuantize
for every reader of a conv output that also feeds a ReduceMean (squeeze-excite pools: with
a dynamic input shape OpenVINO otherwise drops that branch's scale). Measured on the
detector: IoU 0.930, all 62 convs and both deconvs u8, 26.1 ms vs NNCF's 30.8 ms
(docs/measured-facts.md).

The artifact is the serialised IR (model.xml + model.bin, weights never compressed to
fp16) with its compile settings; the predictor compiles one static-shape model per input
shape it sees (faster than dynamic shapes and clear of their bugs).
"""
from __future__ import annotations

import collections
import importlib.util
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.machine import cpu_isa
from quantkit.model_files import InferenceModel
from quantkit.targets.artifact import Artifact
from quantkit.targets.base import Availability
from quantkit.targets.options import load_options, option
from quantkit.targets.profile import Backend, Precision, TargetProfile

IR_FILE, WEIGHTS_FILE = "model.xml", "model.bin"
HINTS = ("LATENCY", "THROUGHPUT")
PRECISIONS = ("f32", "bf16", "f16")
SOURCES = ("auto", "paddle", "onnx")
QUANTIZED_READERS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")
NON_NEGATIVE = ("Relu", "Sigmoid", "HSigmoid", "HardSigmoid")
KERNEL_LAYERS = ("Convolution", "Deconvolution", "FullyConnected", "MatMul")


@dataclass(frozen=True)
class OpenVinoOptions:
    """The `[options]` of an openvino profile."""

    performance_hint: str = option("LATENCY", choices=HINTS,
                                   help="OpenVINO's PERFORMANCE_HINT")
    num_streams: int = option(1, min=1, max=64, help="parallel inference streams")
    inference_precision: str = option("f32", choices=PRECISIONS,
                                      help="precision of the ops left in float: f32 keeps "
                                           "FP32 FP32 (OpenVINO's default on CPUs with "
                                           "avx512_bf16 is bf16)")
    read_from: str = option("auto", choices=SOURCES,
                            help="how OpenVINO reads the model: its Paddle frontend, an "
                                 "ONNX export, or the frontend with ONNX as the fallback")

    @classmethod
    def from_profile(cls, profile: TargetProfile) -> "OpenVinoOptions":
        return load_options(cls, profile.options, profile.backend, profile.where)

    def compile_config(self, threads: int) -> dict:
        return {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": self.performance_hint,
                "NUM_STREAMS": self.num_streams,
                "INFERENCE_PRECISION_HINT": self.inference_precision}


class OpenVinoPredictor:
    """A compiled OpenVINO model per input shape; float outputs in the model's order."""

    def __init__(self, xml: Path, config: dict) -> None:
        import openvino as ov

        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(xml))
        except Exception as exc:  # noqa: BLE001 - OpenVINO's read errors have many types
            raise QuantkitError(f"OpenVINO cannot read {xml}: {_first_line(exc)} (convert "
                                "the model again)") from None
        self._config = dict(config)
        self.input_names: Sequence[str] = [port.get_any_name() for port in self._model.inputs]
        self._compiled: dict[tuple, tuple] = {}  # input shapes -> (compiled model, request)

    def compiled_for(self, feeds: dict[str, np.ndarray]):
        return self._compiled_request(feeds)[0]

    def _compiled_request(self, feeds: dict[str, np.ndarray]) -> tuple:
        shapes = tuple((name, tuple(feeds[name].shape)) for name in self.input_names)
        if shapes not in self._compiled:
            model = self._model.clone()
            model.reshape({name: list(shape) for name, shape in shapes})
            try:
                compiled = self._core.compile_model(model, "CPU", self._config)
            except Exception as exc:  # noqa: BLE001
                raise QuantkitError(f"OpenVINO cannot compile the model for input shapes "
                                    f"{dict(shapes)}: {_first_line(exc)}") from None
            self._compiled[shapes] = (compiled, compiled.create_infer_request())
        return self._compiled[shapes]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        compiled, request = self._compiled_request(feeds)
        results = request.infer({name: np.ascontiguousarray(feeds[name])
                                 for name in self.input_names})
        return [np.array(results[port], dtype=np.float32) for port in compiled.outputs]


def runtime_precisions(compiled) -> dict[str, int]:
    """How many convolution/matmul layers the compiled model runs in which precision, e.g.
    {"Convolution u8": 62}: the proof that OpenVINO executes int8 kernels."""
    counts = collections.Counter()
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in KERNEL_LAYERS:
            counts[f"{layer} {info['runtimePrecision'].astype(str)}"] += 1
    return dict(sorted(counts.items()))


class OpenVinoAdapter:
    backend = Backend.OPENVINO

    def availability(self, profile: TargetProfile) -> Availability:
        OpenVinoOptions.from_profile(profile)
        if profile.device != "cpu":
            return Availability(False, f"device '{profile.device}': this adapter runs "
                                       "OpenVINO's CPU plugin only (set device = \"cpu\")")
        isa = cpu_isa()
        if not isa.is_x86:
            return Availability(False, f"OpenVINO's CPU plugin targets x86-64 here; this is "
                                       f"{isa.arch}")
        if importlib.util.find_spec("openvino") is None:
            return Availability(False, "openvino is not installed: pip install "
                                       "openvino==2026.4.1")
        if profile.precision == Precision.INT8:
            kernels = ("brgconv I8 kernels with VNNI" if isa.vnni else
                       "AVX2 I8 kernels (u8s8, no VNNI)")
            return Availability(True, f"OpenVINO CPU on {isa.summary}; {kernels}")
        return Availability(True, f"OpenVINO CPU on {isa.summary}")

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        import openvino as ov

        options = OpenVinoOptions.from_profile(profile)
        _refuse_mismatch(model, profile)
        with tempfile.TemporaryDirectory(prefix=".openvino-", dir=out_dir) as work:
            stats: dict = {}
            if profile.precision == Precision.INT8:
                from quantkit.calibration.qdq_program import float_twin

                scales = float_twin(model.model_file, model.params_file, Path(work))
                source = Path(work)
                ov_model, read_with = read_float_model(source, options.read_from, Path(work))
                stats = insert_quantkit_fq(ov_model, scales)
            else:
                ov_model, read_with = read_float_model(model.model_dir, options.read_from,
                                                       Path(work), model)
            ov.save_model(ov_model, str(out_dir / IR_FILE), compress_to_fp16=False)
        record = {"compile": options.compile_config(profile.threads), "read_with": read_with,
                  "options": asdict(options), "quantization": stats,
                  "openvino_version": ov.__version__, "built_on_cpu": cpu_isa().describe(),
                  "inputs": [{"name": feed.name, "shape": list(feed.shape),
                              "dtype": feed.dtype} for feed in model.feeds]}
        record["kernels"] = _kernels(out_dir / IR_FILE, record["compile"], model, profile)
        return Artifact(folder=out_dir, target=profile.name, backend=self.backend,
                        precision=profile.precision, files=(IR_FILE, WEIGHTS_FILE),
                        settings=record)

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> OpenVinoPredictor:
        available = self.availability(profile)
        if not available.can_run:
            raise QuantkitError(f"cannot run {artifact.target} here: {available.reason}")
        options = OpenVinoOptions.from_profile(profile)
        return OpenVinoPredictor(artifact.folder / IR_FILE,
                                 options.compile_config(profile.threads))


def read_float_model(model_dir: Path, read_from: str, work: Path,
                     model: InferenceModel | None = None):
    """(ov.Model, "paddle" | "onnx") of the float model in `model_dir`."""
    import openvino as ov

    from quantkit.model_files import check_inference_model

    model = model or check_inference_model(model_dir)
    if read_from in ("auto", "paddle"):
        try:
            return ov.Core().read_model(str(model.model_file)), "paddle"
        except Exception as exc:  # noqa: BLE001 - e.g. "No creator found for mul node"
            if read_from == "paddle":
                raise QuantkitError(f"OpenVINO's Paddle frontend cannot read "
                                    f"{model.model_file}: {_first_line(exc)} (set options."
                                    "read_from = \"onnx\")") from None
    from quantkit.targets.onnx_runtime import export_lowest_opset

    onnx_file = work / "float.onnx"
    export_lowest_opset(model, onnx_file)
    return ov.Core().read_model(str(onnx_file)), "onnx"


def insert_quantkit_fq(model, scales) -> dict:
    """quantkit's int8 weights and one FakeQuantize per quantized activation (module doc)."""
    from openvino import opset13 as ops

    stats = {"weights": _put_int8_weights(model, scales, ops), "activations": 0,
             "activation_inputs": 0, "missing": []}
    ports = {name: output for node in model.get_ordered_ops() for output in node.outputs()
             for name in output.get_names()}
    made: dict[str, object] = {}
    for tensor, threshold in sorted(scales.activations.items()):
        if tensor not in ports:
            stats["missing"].append(tensor)
            continue
        output = ports[tensor]
        producer = output.get_node().get_type_name()
        readers = list(output.get_target_inputs())
        shared = producer in QUANTIZED_READERS and any(
            reader.get_node().get_type_name() == "ReduceMean" for reader in readers)
        for reader in readers:
            kind = reader.get_node().get_type_name()
            quantized_input = kind in QUANTIZED_READERS and reader.get_index() == 0
            if not quantized_input and not (shared and kind not in ("Result", "ShapeOf")):
                continue
            if tensor not in made:
                made[tensor] = _fake_quantize(ops, output, threshold, producer in NON_NEGATIVE)
                stats["activations"] += 1
            reader.replace_source_output(made[tensor].output(0))
            stats["activation_inputs"] += 1
    model.validate_nodes_and_infer_types()
    return stats


def _fake_quantize(ops, port, threshold: float, non_negative: bool):
    low = np.array(0.0 if non_negative else -128.0 / 127.0 * threshold, np.float32)
    high = np.array(threshold, np.float32)
    return ops.fake_quantize(port, low, high, low, high, 256)


def _put_int8_weights(model, scales, ops) -> int:
    import openvino as ov

    replaced = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() not in QUANTIZED_READERS:
            continue
        constant, target = _weight_constant(node)
        if constant is None or constant.get_friendly_name() not in scales.weights:
            continue
        codes, threshold, axis = scales.weights[constant.get_friendly_name()]
        if tuple(codes.shape) != tuple(constant.get_data().shape):
            continue  # an ONNX export may have reshaped it: leave the float weight
        shape = [1] * codes.ndim
        shape[axis] = threshold.size
        dequantized = ops.multiply(
            ops.convert(ops.constant(codes.astype(np.int8)), ov.Type.f32),
            ops.constant((threshold / 127.0).reshape(shape).astype(np.float32)))
        target.replace_source_output(dequantized.output(0))
        replaced += 1
    return replaced


def _weight_constant(node):
    """The Constant feeding a conv weight input (directly or through a depthwise Reshape)."""
    source = node.input(1).get_source_output().get_node()
    if source.get_type_name() == "Constant":
        return source, node.input(1)
    if source.get_type_name() == "Reshape":
        constant = source.input(0).get_source_output().get_node()
        if constant.get_type_name() == "Constant":
            return constant, source.input(0)
    return None, None


def _kernels(xml: Path, config: dict, model: InferenceModel,
             profile: TargetProfile) -> dict[str, int]:
    """Runtime precisions of the compiled artifact at one probe shape (batch 1)."""
    shapes = {}
    for feed in model.feeds:
        shape = tuple(profile.input_shapes.get(feed.name, feed.shape))
        if any(dim < 0 for dim in shape[1:]):
            return {}  # no shape to compile at (set the profile's input_shapes)
        shapes[feed.name] = np.zeros((1, *shape[1:]), feed.dtype)
    predictor = OpenVinoPredictor(xml, config)
    return runtime_precisions(predictor.compiled_for(shapes))


def _refuse_mismatch(model: InferenceModel, profile: TargetProfile) -> None:
    if profile.precision == Precision.INT8 and not model.qdq:
        what = "a fake-quant model" if model.quantized else "an FP32 model"
        raise QuantkitError(f"{model.model_file} is {what}: target '{profile.name}' builds "
                            "OpenVINO INT8 from a QDQ calibration: 'quantkit calibrate "
                            "MODEL_DIR --calib DATA --onnx-format --out DIR' first")
    if profile.precision == Precision.FP32 and model.quantized:
        raise QuantkitError(f"{model.model_file} is quantized: target '{profile.name}' runs "
                            "the FP32 model; give it the FP32 model, or use intel-openvino-int8")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
