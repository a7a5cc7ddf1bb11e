"""Paddle Lite adapter: a Paddle inference model -> an `opt`-optimised `.nb` for ARM CPUs.

`opt` aborts the whole process on an op it cannot place, so it only ever runs in a
subprocess, and the model's ops are checked against opt's own supported-op table first so
the user sees which ops are at fault instead of a core dump. This machine is x86: only
x86 FP32 `.nb` files can be run here (Lite's x86 INT8 kernels give wrong numbers).
"""
from __future__ import annotations

import difflib
import importlib.util
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.model_files import InferenceModel
from quantkit.targets.base import (Artifact, Availability, is_qdq_format, is_quantized,
                                   run_tool)
from quantkit.targets.profile import TargetProfile

NB_FILE = "model.nb"
ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l")  # platform.machine() on ARM boards
VALID_TARGETS = ("arm", "opencl", "x86")
_DEFAULT_TARGETS = {"arm": "arm", "cpu": "x86"}  # profile.device -> opt --valid_targets
_ARM_REASON = ("needs an ARM device: copy the .nb and run it with Paddle Lite's "
               "MobileConfig on the board")
_X86_INT8_REASON = ("Paddle Lite 2.13rc0 x86 INT8 .nb files give NaN or wrong outputs (or "
                    "segfault) on this machine: run INT8 on an ARM device, or use an fp32 "
                    "x86 profile here")
_CALIBRATE_HINT = (
    "calibrate it first with quantkit.quant.quant_post_static(executor, model_dir, "
    "quantize_model_path, sample_generator=...) (onnx_format True or False both convert), "
    "or set weight_only_int8 = true in the profile's [options] for weight-only INT8 "
    "without calibration data")


@dataclass(frozen=True)
class LiteOptions:
    """The `[options]` of a paddle-lite profile, validated; one source of defaults."""

    valid_targets: str = "arm"
    opt_path: Path = field(default_factory=lambda: Path(sys.executable).parent /
                           "paddle_lite_opt")
    weight_only_int8: bool = False
    timeout_s: float = 300.0

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.valid_targets.split(","))

    @classmethod
    def from_profile(cls, profile: TargetProfile) -> "LiteOptions":
        """Reject unknown keys and bad values, naming the key and the profile file."""
        where = f" in {profile.source}" if profile.source else f" in profile {profile.name!r}"
        options: Mapping[str, Any] = profile.options
        known = ("valid_targets", "opt_path", "weight_only_int8", "timeout_s")
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise QuantkitError(f"unknown option '{key}' for backend paddle-lite{where}"
                                    f"{hint}; known options: {', '.join(known)}")
        if profile.device not in _DEFAULT_TARGETS:
            raise QuantkitError(f"bad value for 'device'{where}: {profile.device!r} (Paddle "
                                "Lite targets 'arm' boards or an x86 'cpu')")
        values: dict[str, Any] = {"valid_targets": _DEFAULT_TARGETS[profile.device]}
        if "valid_targets" in options:
            targets = options["valid_targets"]
            tokens = targets.split(",") if isinstance(targets, str) else []
            if not tokens or any(token not in VALID_TARGETS for token in tokens):
                raise QuantkitError(f"bad value for 'options.valid_targets'{where}: "
                                    f"{targets!r} (comma-separated from "
                                    f"{', '.join(VALID_TARGETS)})")
            values["valid_targets"] = targets
        if "opt_path" in options:
            if not isinstance(options["opt_path"], str) or not options["opt_path"]:
                raise QuantkitError(f"bad value for 'options.opt_path'{where}: "
                                    f"{options['opt_path']!r} (path of an opt binary)")
            values["opt_path"] = Path(options["opt_path"]).expanduser()
        if "weight_only_int8" in options:
            if not isinstance(options["weight_only_int8"], bool):
                raise QuantkitError(f"bad value for 'options.weight_only_int8'{where}: "
                                    f"{options['weight_only_int8']!r} (true or false)")
            values["weight_only_int8"] = options["weight_only_int8"]
        if "timeout_s" in options:
            timeout = options["timeout_s"]
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise QuantkitError(f"bad value for 'options.timeout_s'{where}: {timeout!r} "
                                    "(seconds, a positive number)")
            values["timeout_s"] = float(timeout)
        result = cls(**values)
        if "arm" in result.targets and profile.device != "arm":
            raise QuantkitError(f"valid_targets {result.valid_targets!r} needs device = 'arm'"
                                f"{where} (device is {profile.device!r})")
        if "arm" not in result.targets and profile.device == "arm":
            raise QuantkitError(f"device = 'arm'{where} needs 'arm' in options.valid_targets "
                                f"(got {result.valid_targets!r})")
        if result.weight_only_int8 and profile.precision != "int8":
            raise QuantkitError(f"options.weight_only_int8{where} needs precision = 'int8' "
                                f"(precision is {profile.precision!r})")
        return result


@dataclass
class LitePredictor:
    """A `paddlelite.lite` light predictor on a `.nb` file (x86 FP32 only, here)."""

    input_names: Sequence[str]
    input_dtypes: Mapping[str, str]
    _predictor: Any

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self.input_names:
            if name not in feeds:
                raise QuantkitError(f"missing input '{name}' (the model's inputs: "
                                    f"{', '.join(self.input_names)})")
            array = np.ascontiguousarray(feeds[name],
                                         dtype=self.input_dtypes.get(name, "float32"))
            self._predictor.get_input_by_name(name).from_numpy(array)
        self._predictor.run()
        # Copy: the output tensors' memory is reused by the next run.
        return [np.array(self._predictor.get_output_by_name(name).numpy(), copy=True)
                for name in self._predictor.get_output_names()]


class PaddleLiteAdapter:
    """Converts with Paddle Lite `opt` (subprocess) and runs x86 FP32 `.nb` in-process."""

    backend = "paddle-lite"

    def __init__(self) -> None:
        # Supported-op tables per (opt path, valid_targets): one opt call each.
        self._op_tables: dict[tuple[str, str], frozenset[str]] = {}

    def availability(self, profile: TargetProfile) -> Availability:
        options = LiteOptions.from_profile(profile)
        lite = importlib.util.find_spec("paddlelite") is not None
        if options.targets != ("x86",):
            if platform.machine().lower() in ARM_MACHINES and lite:  # on the board itself
                return Availability(True, f"ARM .nb via paddlelite.lite MobileConfig on "
                                          f"{platform.machine()}")
            return Availability(False, _ARM_REASON)
        if profile.precision == "int8":
            return Availability(False, _X86_INT8_REASON)
        if not lite:
            return Availability(False, "paddlelite is not installed: pip install "
                                "paddlelite==2.13rc0 \"numpy<2\" (CPython 3.7-3.10)")
        return Availability(True, "x86 FP32 .nb via paddlelite.lite MobileConfig")

    def supported_ops(self, options: LiteOptions) -> frozenset[str]:
        """The ops opt can place on `valid_targets`, read from `--print_supported_ops`."""
        opt = self._opt_binary(options)
        key = (str(opt), options.valid_targets)
        if key not in self._op_tables:
            output = run_tool([str(opt), "--print_supported_ops=true",
                               f"--valid_targets={options.valid_targets}"],
                              options.timeout_s, f"Paddle Lite opt ({opt})")
            table = parse_supported_ops(output)
            if not table:
                first = output.strip().splitlines()[:1] or ["(no output)"]
                raise QuantkitError(f"could not read the supported-op table of {opt} for "
                                    f"valid_targets={options.valid_targets}: it printed "
                                    f"{first[0]!r}")
            self._op_tables[key] = table
        return self._op_tables[key]

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        options = LiteOptions.from_profile(profile)
        mode = _conversion_mode(model, profile, options)
        unsupported = sorted(set(model.op_types) - self.supported_ops(options))
        if unsupported:
            raise QuantkitError(_unsupported_message(model, options, unsupported))
        opt = self._opt_binary(options)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)  # opt does not create folders
        command = [str(opt), f"--model_file={model.model_file}",
                   f"--valid_targets={options.valid_targets}",
                   "--optimize_out_type=naive_buffer",
                   f"--optimize_out={out_dir / Path(NB_FILE).stem}"]
        if model.params_file is not None:
            command.insert(2, f"--param_file={model.params_file}")
        else:  # parameters saved one file per variable
            command[1] = f"--model_dir={model.model_dir}"
        if mode == "int8-weight-only":
            command += ["--quant_model=true", "--quant_type=QUANT_INT8"]
        try:
            run_tool(command, options.timeout_s, f"Paddle Lite opt ({opt})")
        except QuantkitError as exc:
            found = re.search(r"unsupported ops are: (.+?)\.?(?: \||$)", str(exc))
            if found:
                raise QuantkitError(_unsupported_message(model, options, found.group(1)
                                                         .replace("'", "").split(", ")))
            raise QuantkitError(f"converting {model.model_file} for valid_targets="
                                f"{options.valid_targets}: {exc}") from None
        nb = out_dir / NB_FILE
        if not nb.is_file() or nb.stat().st_size == 0:
            raise QuantkitError(f"Paddle Lite opt ({opt}) reported success but wrote no "
                                f"{nb}: check that it is a Paddle Lite 2.x opt binary")
        return Artifact(
            folder=out_dir, target=profile.name, backend=self.backend,
            precision=profile.precision, files=(NB_FILE,),
            settings={
                "mode": mode,
                "valid_targets": options.valid_targets,
                "opt_path": str(opt),
                "opt_version": self._opt_version(opt, options),
                "opt_command": _portable_command(command, model, out_dir),
                "inputs": [{"name": feed.name, "shape": list(feed.shape), "dtype": feed.dtype}
                           for feed in model.feeds],
                "threads": profile.threads,
            })

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> LitePredictor:
        available = self.availability(profile)
        if not available.can_run:
            raise QuantkitError(f"cannot run {artifact.folder / NB_FILE} here: "
                                f"{available.reason}")
        nb = artifact.folder / NB_FILE
        if not nb.is_file() or nb.stat().st_size == 0:  # Lite aborts on a missing model
            raise QuantkitError(f"model file missing or empty: {nb} (prepare the artifact "
                                "again)")
        from paddlelite.lite import MobileConfig, create_paddle_predictor

        config = MobileConfig()
        config.set_model_from_file(str(nb))
        predictor = create_paddle_predictor(config)
        inputs = artifact.settings.get("inputs", [])
        return LitePredictor(
            input_names=tuple(predictor.get_input_names()),
            input_dtypes={item["name"]: item["dtype"] for item in inputs},
            _predictor=predictor)

    def _opt_binary(self, options: LiteOptions) -> Path:
        if not options.opt_path.is_file():
            raise QuantkitError(f"Paddle Lite opt not found: {options.opt_path} (install "
                                "paddlelite==2.13rc0 in this environment, or set "
                                "options.opt_path to an opt binary)")
        return options.opt_path

    @staticmethod
    def _opt_version(opt: Path, options: LiteOptions) -> str:
        """`--version` of the Python `paddle_lite_opt`; official binaries may not have it."""
        try:
            output = run_tool([str(opt), "--version"], min(options.timeout_s, 30.0),
                              "Paddle Lite opt --version")
        except QuantkitError:
            return "unknown"
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        return lines[-1] if lines else "unknown"


def _portable_command(command: list[str], model: InferenceModel, out_dir: Path) -> list[str]:
    """The opt command as recorded: paths as <model_dir>/... and <artifact>/... placeholders.

    The real paths (a random staging folder, wherever the model lay) would make two
    conversions of the same model differ in artifact.json, and thus in a bundle.
    """
    return [Path(command[0]).name] + [
        arg.replace(str(out_dir), "<artifact>").replace(str(model.model_dir), "<model_dir>")
        for arg in command[1:]]


def parse_supported_ops(output: str) -> frozenset[str]:
    """Op names from opt's table: a header row `OP_name kARM kHost ...`, then one row per
    op with `Y` under each kernel target it has (any `Y` means opt can place it)."""
    ops: set[str] = set()
    in_table = False
    for line in output.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "OP_name":
            in_table = True
        elif words[0].startswith("Supported"):
            in_table = False
        elif in_table and "Y" in words[1:]:
            ops.add(words[0])
    return frozenset(ops)


def _conversion_mode(model: InferenceModel, profile: TargetProfile,
                     options: LiteOptions) -> str:
    """Which opt conversion fits this model and profile, or a refusal saying what to do."""
    quantized = is_quantized(model)
    if profile.precision == "fp32":
        if quantized:
            raise QuantkitError(f"{model.model_file} is already quantized (INT8), but "
                                f"profile {profile.name!r} is fp32: give it the FP32 model, "
                                "or use an int8 profile such as arm-lite-int8")
        return "fp32"
    if quantized:
        if options.weight_only_int8:
            raise QuantkitError(f"{model.model_file} is already calibrated; "
                                "options.weight_only_int8 is for FP32 models: drop it from "
                                f"profile {profile.name!r} to convert the calibrated model")
        return "int8-qdq" if is_qdq_format(model) else "int8-fake-quant"
    if options.weight_only_int8:
        return "int8-weight-only"
    raise QuantkitError(f"{model.model_file} is an FP32 model and profile {profile.name!r} "
                        f"needs a calibrated INT8 model: {_CALIBRATE_HINT}")


def _unsupported_message(model: InferenceModel, options: LiteOptions,
                         ops: Sequence[str]) -> str:
    listed = ", ".join(f"'{op}'" for op in ops)
    return (f"{model.model_file} has ops Paddle Lite opt cannot place on valid_targets="
            f"{options.valid_targets}: {listed}; export the model with supported ops "
            f"instead (see `{options.opt_path.name} --print_supported_ops=true "
            f"--valid_targets={options.valid_targets}`)")
