"""ONNX Runtime target: paddle2onnx export, int8 weight storage, and a CPU session recipe.

Why the INT8 session sets `session.x64quantprecision=1` on CPUs without VNNI
------------------------------------------------------------------------------
On x86 ONNX Runtime turns a QDQ Conv into QLinearConv and, by default, shifts int8
activations to uint8 (zero point + 128) while weights stay int8: a u8s8 GEMM. Without
VNNI (`avx512_vnni`, `avx_vnni`) or AMX that GEMM uses `vpmaddubsw`, which adds two u8*s8
products into a *saturating int16*: 2 * 255 * 127 = 64770 > 32767, so per-channel weights
that use the full int8 range overflow. Measured on this AVX2 host (MobileNetV1 x0.5,
MNIST, 2000 test images): FP32 94.90%; QDQ emulated in float (BASIC level) 94.45%;
ENABLE_EXTENDED/ALL (QLinearConv, u8s8) 90.00%; ENABLE_ALL + `x64quantprecision=1` 94.45%,
the same as the float emulation, still 27 QLinearConv. That config entry (ORT's
documented fix, `kOrtSessionOptionsAvx2PrecisionMode`) converts the weights to uint8 too,
and the u8u8 kernel widens to int16 before `vpmaddwd`, so nothing saturates. Re-quantizing
weights to 7 bits (`reduce_range`) also stops the overflow but lost accuracy (94.10%) and
changes the calibrated model; the BASIC level is exact but runs no int8 kernel (~7x
slower). So: `int8_precision = "auto"` picks the exact u8u8 kernel on x86 without
VNNI/AMX and the default (fast, already exact) kernel where VNNI or AMX exists.
"""
from __future__ import annotations

import collections
import importlib.metadata
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.files import ONNX_MODEL_FILE
from quantkit.machine import CpuIsa, cpu_isa
from quantkit.model_files import InferenceModel
from quantkit.targets.artifact import Artifact
from quantkit.targets.base import Availability, run_tool
from quantkit.targets.onnx_weights import fold_weight_quantizers
from quantkit.targets.options import load_options, option
from quantkit.targets.profile import Backend, Precision, TargetProfile

MODEL_FILE = ONNX_MODEL_FILE
PADDLE2ONNX_TIMEOUT_S = 300.0
X64_PRECISION_KEY = "session.x64quantprecision"  # ORT: use u8u8 instead of saturating u8s8
GRAPH_LEVELS = ("disable", "basic", "extended", "all")
PRECISION_MODES = ("auto", "exact", "fast")
# A weight rewrite may only move outputs by float rounding; it measured 0.0 here.
REWRITE_TOLERANCE = 1e-4
CALIBRATE_HINT = ("'quantkit calibrate MODEL_DIR --calib DATA --onnx-format --out DIR' "
                  "(in Python: quant_post_static(..., onnx_format=True))")


@dataclass(frozen=True)
class OnnxOptions:
    """The `[options]` of an onnxruntime profile."""

    opset_version: Optional[int] = option(None, min=7, max=19,
                                          help="ONNX opset paddle2onnx exports (default: "
                                               "the lowest of 13-17 it can export at)")
    graph_optimization: str = option("all", choices=GRAPH_LEVELS,
                                     help="ORT graph optimisation level")
    int8_precision: str = option("auto", choices=PRECISION_MODES,
                                 help="auto: exact u8u8 GEMM where u8s8 would saturate")
    int8_weights: bool = option(True, help="store QDQ weights as int8 initializers")

    @classmethod
    def from_profile(cls, profile: TargetProfile) -> "OnnxOptions":
        return load_options(cls, profile.options, profile.backend, profile.where)


@dataclass(frozen=True)
class SessionSettings:
    """Everything that shapes an ORT CPU session: what a release must record to reproduce."""

    graph_optimization: str
    intra_op_num_threads: int
    config_entries: Mapping[str, str]
    reason: str

    def session_options(self):
        import onnxruntime as ort

        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[self.graph_optimization]
        options.intra_op_num_threads = self.intra_op_num_threads
        options.log_severity_level = 3  # errors only: no NCHWc warnings in user output
        for key, value in self.config_entries.items():
            options.add_session_config_entry(key, value)
        return options


def session_settings(options: OnnxOptions, precision: str, threads: int,
                     isa: CpuIsa) -> SessionSettings:
    """Pick the session recipe for `precision` on `isa` (see the module docstring)."""
    entries: dict[str, str] = {}
    if precision != Precision.INT8:
        reason = "fp32 model: no int8 GEMM"
    elif options.int8_precision == "exact" or (options.int8_precision == "auto"
                                               and isa.u8s8_saturates):
        entries[X64_PRECISION_KEY] = "1"
        reason = (f"{isa.describe()}: u8s8 int8 GEMM saturates int16 sums, "
                  "so use the exact u8u8 kernel")
    elif options.int8_precision == "fast" and isa.u8s8_saturates:
        reason = f"{isa.describe()}: fast u8s8 kernel requested although it may saturate"
    else:
        reason = f"{isa.describe()}: u8s8 int8 GEMM is exact here"
    return SessionSettings(options.graph_optimization, threads, entries, reason)


class OnnxPredictor:
    """A CPU InferenceSession returning float outputs in the model's output order."""

    def __init__(self, model_path: Path, settings: SessionSettings) -> None:
        import onnxruntime as ort

        self.settings = settings
        try:
            self.session = ort.InferenceSession(str(model_path), settings.session_options(),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT's load errors have many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise QuantkitError(f"ONNX Runtime cannot load {model_path}: {first[:300]} "
                                "(convert the model again)") from None
        self.input_names: Sequence[str] = [i.name for i in self.session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        outputs = self.session.run(None, feeds)
        return [np.asarray(out, dtype=np.float32) for out in outputs]


class OnnxRuntimeAdapter:
    """paddle2onnx (subprocess) -> onnx checker -> int8 weights -> ORT CPU session.

    The exported model keeps paddle2onnx's dynamic batch axis, so `batch_sizes` need no
    rebuild; `input_shapes` / `dynamic_shapes` are not used by this backend.
    """

    backend = Backend.ONNXRUNTIME

    def __init__(self, isa: CpuIsa | None = None) -> None:
        self.isa = isa or cpu_isa()

    def availability(self, profile: TargetProfile) -> Availability:
        self._options(profile)
        if profile.device != "cpu":
            return Availability(False, f"device '{profile.device}': this adapter runs ONNX "
                                       "Runtime's CPU provider only (set device = \"cpu\")")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not importable ({exc}); install "
                                       "the onnxruntime wheel")
        if "CPUExecutionProvider" not in ort.get_available_providers():
            return Availability(False, "onnxruntime has no CPUExecutionProvider")
        if profile.precision == Precision.INT8:
            settings = session_settings(self._options(profile), profile.precision, 1, self.isa)
            return Availability(True, f"ONNX Runtime {ort.__version__} CPU: {settings.reason}")
        return Availability(True, f"ONNX Runtime {ort.__version__} CPU, {self.isa.describe()}")

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        options = self._options(profile)
        _refuse_mismatch(model, profile)
        out_dir = Path(out_dir)
        with tempfile.TemporaryDirectory(prefix=".paddle2onnx-", dir=out_dir) as work:
            exported = Path(work) / "exported.onnx"
            opsets = (options.opset_version,) if options.opset_version else AUTO_OPSETS
            export_lowest_opset(model, exported, opsets)
            onnx_model = _load_checked(exported, "paddle2onnx output")
            final, weights = exported, {"rewritten": False}
            if profile.precision == Precision.INT8 and options.int8_weights:
                final = Path(work) / "rewritten.onnx"
                weights = _store_int8_weights(onnx_model, exported, final, model)
            final.replace(out_dir / MODEL_FILE)
        settings = session_settings(options, profile.precision, profile.threads, self.isa)
        record = {
            "opset_version": _opset(onnx_model),
            "paddle2onnx_version": _version("paddle2onnx"),
            "onnx_version": _version("onnx"),
            "onnxruntime_version": _version("onnxruntime"),
            "session": _settings_record(settings),
            "int8_precision": options.int8_precision,
            "built_on_cpu": self.isa.describe(),
            "weights": weights,
            "kernels": session_op_types(out_dir / MODEL_FILE, settings),
        }
        return Artifact(folder=out_dir, target=profile.name, backend=self.backend,
                        precision=profile.precision, files=(MODEL_FILE,), settings=record)

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> OnnxPredictor:
        """Resolve the session recipe on *this* host: a VNNI build may run on an AVX2 box."""
        options = self._options(profile)
        settings = session_settings(options, artifact.precision, profile.threads, self.isa)
        model_path = artifact.folder / MODEL_FILE
        if not model_path.is_file():
            raise QuantkitError(f"artifact model missing: {model_path} (prepare the target again)")
        return OnnxPredictor(model_path, settings)

    def _options(self, profile: TargetProfile) -> OnnxOptions:
        if profile.backend != self.backend:
            raise QuantkitError(f"target '{profile.name}' has backend '{profile.backend}', "
                                f"not '{self.backend}': pick the adapter for its backend")
        return OnnxOptions.from_profile(profile)


AUTO_OPSETS = (13, 14, 15, 16, 17)


def export_lowest_opset(model: InferenceModel, save_file: Path,
                        opsets: Sequence[int] = AUTO_OPSETS) -> int:
    """Export at the first opset of `opsets` paddle2onnx can: 13 covers most CNNs, while
    e.g. hard_swish needs 14 and the PP-OCRv4 detector 16 ("Due to opset version")."""
    failures = []
    for opset in opsets:
        try:
            export_with_paddle2onnx(model, save_file, opset)
            return opset
        except QuantkitError as exc:
            failures.append((opset, str(exc)))
            save_file.unlink(missing_ok=True)
    tried = ", ".join(str(opset) for opset, _ in failures)
    raise QuantkitError(f"paddle2onnx cannot export {model.model_file} at opset {tried}: "
                        f"{failures[-1][1]}")


def export_with_paddle2onnx(model: InferenceModel, save_file: Path, opset_version: int) -> str:
    """Run paddle2onnx 1.3.1 in a subprocess: it aborts the process on unsupported input.

    1.3.1 has no onnx_graphsurgeon/pip step (checked: neither its Python sources nor its
    native module mention either), so no network access happens at export time.
    """
    if model.params_file is None:
        raise QuantkitError(f"{model.model_dir}: paddle2onnx needs combined parameters "
                            "(*.pdiparams); re-save the model with params_filename set")
    command = [sys.executable, "-m", "paddle2onnx.command",
               "--model_dir", str(model.model_dir),
               "--model_filename", model.model_filename,
               "--params_filename", str(model.params_filename),
               "--save_file", str(save_file),
               "--opset_version", str(opset_version),
               "--enable_onnx_checker", "True",
               "--enable_auto_update_opset", "False",
               "--deploy_backend", "onnxruntime"]
    output = run_tool(command, PADDLE2ONNX_TIMEOUT_S, f"paddle2onnx on {model.model_file}")
    if not save_file.is_file() or save_file.stat().st_size == 0:
        last = output.strip().splitlines()[-1:] or ["no output"]
        raise QuantkitError(f"paddle2onnx wrote no model for {model.model_file}: {last[0]}")
    return output


def session_op_types(model_path: Path, settings: SessionSettings) -> dict[str, int]:
    """Op counts of the graph ORT really runs (after its fusions) under `settings`.

    This is the proof that int8 kernels run: QLinearConv / ConvInteger / QLinearMatMul
    appear only if ORT fused the QDQ groups.
    """
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort-optimized-") as work:
        optimized = Path(work) / "optimized.onnx"
        options = settings.session_options()
        options.optimized_model_filepath = str(optimized)
        ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(optimized)).graph
        return dict(sorted(collections.Counter(node.op_type for node in graph.node).items()))


def _refuse_mismatch(model: InferenceModel, profile: TargetProfile) -> None:
    """Refuse before any conversion what this target cannot turn into its precision."""
    if profile.precision == Precision.INT8:
        if model.quantized and not model.qdq:
            fake = sorted({op for op in model.op_types if op.startswith("fake_")})
            raise QuantkitError(
                f"{model.model_file} is a fake-quant model ({', '.join(fake)}), which "
                f"paddle2onnx cannot export for target '{profile.name}': re-calibrate in QDQ "
                f"form, e.g. {CALIBRATE_HINT}")
        if not model.quantized:
            raise QuantkitError(
                f"{model.model_file} is an FP32 model: target '{profile.name}' needs a "
                f"calibrated INT8 model; calibrate it first with {CALIBRATE_HINT} "
                "(or use the onnxruntime-fp32 target)")
    elif model.quantized:
        raise QuantkitError(f"{model.model_file} is a quantized model: target "
                            f"'{profile.name}' converts FP32 models as they are; give it the "
                            "FP32 model, or use the onnxruntime-int8 target")


def _load_checked(path: Path, what: str):
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - checker/decoder errors have many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantkitError(f"{what} {path} is not a valid ONNX model: {first}") from None
    return model


def _store_int8_weights(onnx_model, exported: Path, rewritten: Path,
                        source: InferenceModel) -> dict[str, Any]:
    """Fold weight QuantizeLinear nodes into int8 initializers and prove outputs unchanged."""
    import onnx

    stats = fold_weight_quantizers(onnx_model)
    onnx.save(onnx_model, str(rewritten))
    _load_checked(rewritten, "int8-weight rewrite of")
    feeds = _probe_feeds(source)
    record: dict[str, Any] = {"rewritten": True, **stats.to_dict()}
    if feeds is None:
        record["max_abs_diff_vs_export"] = None  # feed shapes unknown: not compared
        return record
    # Compare with ORT's float emulation of QDQ (BASIC): no int8 kernel noise in the way.
    basic = SessionSettings("basic", 1, {}, "rewrite check")
    before = OnnxPredictor(exported, basic).run(feeds)
    after = OnnxPredictor(rewritten, basic).run(feeds)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(before, after))
    if diff > REWRITE_TOLERANCE:
        raise QuantkitError(f"int8 weight rewrite changed the outputs of {source.model_file} "
                            f"by {diff:.3g} (> {REWRITE_TOLERANCE}); set int8_weights = false "
                            "in the profile's [options] and report the model")
    record["max_abs_diff_vs_export"] = diff
    return record


def _probe_feeds(model: InferenceModel) -> dict[str, np.ndarray] | None:
    """Deterministic inputs for the rewrite check; None if a non-batch dim is dynamic."""
    rng = np.random.default_rng(0)
    feeds = {}
    for feed in model.feeds:
        shape = list(feed.shape)
        if shape and shape[0] == -1:
            shape[0] = 2
        if any(dim < 1 for dim in shape) or not feed.dtype.startswith("float"):
            return None
        feeds[feed.name] = rng.uniform(-1.0, 1.0, shape).astype(feed.dtype)
    return feeds


def _settings_record(settings: SessionSettings) -> dict[str, Any]:
    record = asdict(settings)
    record["config_entries"] = dict(settings.config_entries)
    return record


def _opset(onnx_model) -> int:
    return next((entry.version for entry in onnx_model.opset_import
                 if entry.domain in ("", "ai.onnx")), 0)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
