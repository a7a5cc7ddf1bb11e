"""Paddle Lite adapter: a Paddle inference model -> an `opt`-optimised `.nb` for ARM CPUs.

`opt` aborts the whole process on an op it cannot place, so it only ever runs in a
subprocess, and the model's ops are checked against opt's own supported-op table first so
the user sees which ops are at fault instead of a core dump. paddlelite has wheels for
CPython <= 3.10 only, so `opt` and the x86 runtime come from the `lite` side environment
(quantkit.sideenv; predictors run in a worker there, quantkit.targets.side_runtime); on an
ARM board with paddlelite installed the `.nb` runs in-process. This machine is x86: only
x86 FP32 `.nb` files can be run here (Lite's x86 INT8 kernels give wrong numbers).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from quantkit import sideenv
from quantkit.errors import QuantkitError
from quantkit.files import LITE_MODEL_FILE
from quantkit.model_files import InferenceModel
from quantkit.targets.artifact import Artifact
from quantkit.targets.base import Availability, run_tool
from quantkit.targets.base import Predictor
from quantkit.targets.lite_runtime import open_lite
from quantkit.targets.options import load_options, option
from quantkit.targets.profile import Backend, Precision, TargetProfile

NB_FILE = LITE_MODEL_FILE
LITE_ENV = "lite"  # the side env with paddlelite (quantkit.sideenv.SPECS)
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
    """The `[options]` of a paddle-lite profile."""

    valid_targets: Optional[str] = option(None, help="opt --valid_targets, comma-separated "
                                          "from arm, opencl, x86 (default: from device)")
    opt_path: Optional[Path] = option(None, help="an opt binary (default: paddle_lite_opt "
                                      "of the lite side environment)")
    weight_only_int8: bool = option(False, help="weight-only INT8 for an FP32 model")
    timeout_s: float = option(300.0, min=1.0, max=86400.0, help="seconds opt may take")

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(str(self.valid_targets).split(","))

    @property
    def opt(self) -> Path:
        return self.opt_path or sideenv.python_of(LITE_ENV).parent / "paddle_lite_opt"

    @classmethod
    def from_profile(cls, profile: TargetProfile) -> "LiteOptions":
        """Typed options, checked against each other and the profile's device/precision."""
        where = profile.where
        options = load_options(cls, profile.options, profile.backend, where)
        if profile.device not in _DEFAULT_TARGETS:
            raise QuantkitError(f"bad value for 'device'{where}: {profile.device!r} (Paddle "
                                "Lite targets 'arm' boards or an x86 'cpu')")
        if options.valid_targets is None:
            options = dataclasses.replace(options,
                                          valid_targets=_DEFAULT_TARGETS[profile.device])
        tokens = options.valid_targets.split(",")
        if any(token not in VALID_TARGETS for token in tokens):
            raise QuantkitError(f"bad value for 'options.valid_targets'{where}: "
                                f"{options.valid_targets!r} (comma-separated from "
                                f"{', '.join(VALID_TARGETS)})")
        if "arm" in options.targets and profile.device != "arm":
            raise QuantkitError(f"valid_targets {options.valid_targets!r} needs device = 'arm'"
                                f"{where} (device is {profile.device!r})")
        if "arm" not in options.targets and profile.device == "arm":
            raise QuantkitError(f"device = 'arm'{where} needs 'arm' in options.valid_targets "
                                f"(got {options.valid_targets!r})")
        if options.weight_only_int8 and profile.precision != Precision.INT8:
            raise QuantkitError(f"options.weight_only_int8{where} needs precision = 'int8' "
                                f"(precision is {profile.precision!r})")
        return options


class PaddleLiteAdapter:
    """Converts with Paddle Lite `opt` (subprocess); runs x86 FP32 `.nb` in a worker."""

    backend = Backend.PADDLE_LITE

    def __init__(self) -> None:
        # Supported-op tables per (opt path, valid_targets): one opt call each.
        self._op_tables: dict[tuple[str, str], frozenset[str]] = {}

    def availability(self, profile: TargetProfile) -> Availability:
        options = LiteOptions.from_profile(profile)
        if options.targets != ("x86",):
            if _on_arm_board():
                return Availability(True, f"ARM .nb via paddlelite.lite MobileConfig on "
                                          f"{platform.machine()}")
            return Availability(False, _ARM_REASON)
        if profile.precision == Precision.INT8:
            return Availability(False, _X86_INT8_REASON)
        if not sideenv.ready(LITE_ENV):
            return Availability(False, f"the {LITE_ENV} side environment is missing: run "
                                f"'quantkit env install {LITE_ENV}' (paddlelite needs "
                                "CPython 3.10)")
        return Availability(True, "x86 FP32 .nb via paddlelite.lite MobileConfig (lite side "
                                  "environment)")

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

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> Predictor:
        available = self.availability(profile)
        if not available.can_run:
            raise QuantkitError(f"cannot run {artifact.folder / NB_FILE} here: "
                                f"{available.reason}")
        nb = artifact.folder / NB_FILE
        if _on_arm_board():  # paddlelite in this very interpreter
            inputs = artifact.settings.get("inputs") or []
            return open_lite(nb, profile.threads,
                             {item["name"]: item["dtype"] for item in inputs}, probe=True)
        from quantkit.targets.side_runtime import WorkerPredictor

        return WorkerPredictor(artifact, profile.threads, what=f"Paddle Lite cannot load {nb}")

    def _opt_binary(self, options: LiteOptions) -> Path:
        if options.opt_path is None:
            sideenv.require(LITE_ENV)  # missing: says how to make it
        if not options.opt.is_file():
            raise QuantkitError(f"Paddle Lite opt not found: {options.opt} (run 'quantkit "
                                f"env install {LITE_ENV}', or set options.opt_path to an "
                                "opt binary)")
        return options.opt

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


def _on_arm_board() -> bool:
    """An ARM machine whose own Python has paddlelite (a board built with Lite's Python)."""
    return (platform.machine().lower() in ARM_MACHINES
            and importlib.util.find_spec("paddlelite") is not None)


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
    quantized = model.quantized
    if profile.precision == Precision.FP32:
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
        return "int8-qdq" if model.qdq else "int8-fake-quant"
    if options.weight_only_int8:
        return "int8-weight-only"
    raise QuantkitError(f"{model.model_file} is an FP32 model and profile {profile.name!r} "
                        f"needs a calibrated INT8 model: {_CALIBRATE_HINT}")


def _unsupported_message(model: InferenceModel, options: LiteOptions,
                         ops: Sequence[str]) -> str:
    listed = ", ".join(f"'{op}'" for op in ops)
    return (f"{model.model_file} has ops Paddle Lite opt cannot place on valid_targets="
            f"{options.valid_targets}: {listed}; export the model with supported ops "
            f"instead (see `{options.opt.name} --print_supported_ops=true "
            f"--valid_targets={options.valid_targets}`)")
