"""The README.md of a bundle: what it is, what was measured, how to load and verify it.

Rendered only from values that are equal for equal inputs (never the packaging time or
machine), so the README is as reproducible as the model files. The loading snippets are
written from the artifact's own recipe, so they set exactly what quantkit measured with.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

from quantkit.data.feeds import FeedSpec
from quantkit.targets.profile import Backend, Precision
from quantkit.packaging.manifest import MODEL_DIR, SMOKE_DIR, Manifest

_BACKEND_NAMES = {"paddle-inference": "Paddle Inference", "onnxruntime": "ONNX Runtime",
                  "paddle-lite": "Paddle Lite", "tensorrt": "Paddle Inference + TensorRT",
                  "paddle3-inference": "Paddle Inference 3", "openvino": "OpenVINO"}


def render_readme(manifest: Manifest, model_files: Sequence[str],
                  feeds: Sequence[FeedSpec], bundle_name: str) -> str:
    backend = _BACKEND_NAMES.get(manifest.backend, manifest.backend)
    description = manifest.profile.get("description") or f"{backend} {manifest.precision}"
    sections = [
        f"# {manifest.target}: quantkit release bundle\n",
        f"{description}.\n",
        f"Backend **{backend}**, precision **{manifest.precision}**, device "
        f"**{manifest.device}**. Made by `quantkit package` "
        f"(quantkit {manifest.versions.get('quantkit') or 'unknown'}).\n",
        _contents(manifest, model_files),
        _inputs(feeds),
        _measured(manifest),
        _provenance(manifest),
        "## Load it\n",
        _loading(manifest, model_files, feeds),
        _verifying(manifest, bundle_name),
    ]
    return "\n".join(sections).rstrip() + "\n"


def _contents(manifest: Manifest, model_files: Sequence[str]) -> str:
    files = ", ".join(f"`{name}`" for name in model_files)
    output = (f"| `{manifest.smoke.output}` | the outputs the packaging machine computed for "
              "it |" if manifest.smoke.output else
              f"| (no `{SMOKE_DIR}/output.npz`) | not recorded: {manifest.smoke.reason} |")
    return "\n".join([
        "## What is in it\n",
        "| path | what |", "| --- | --- |",
        f"| `{MODEL_DIR}/` | the model as `quantkit convert` wrote it: {files}, "
        "`artifact.json` (files and backend settings), `profile.json` (the target profile) |",
        f"| `{manifest.smoke.input}` | one seeded input batch (seed {manifest.smoke.seed}, "
        f"{manifest.smoke.rows} row) for the smoke check |",
        output,
        "| `manifest.json` | sha256 and size of every other file, runtime settings, "
        "versions, provenance, measured results, and which fields vary between packagings |",
        ""])


def _inputs(feeds: Sequence[FeedSpec]) -> str:
    rows = [f"| `{feed.name}` | {list(feed.shape)} | {feed.dtype} |" for feed in feeds]
    return "\n".join(["## Inputs\n", "| name | shape (-1: any) | dtype |",
                      "| --- | --- | --- |", *rows, ""])


def _measured(manifest: Manifest) -> str:
    if manifest.benchmark is None:
        return ("## Measured\n\nNo measurements in this bundle: it was packaged from a single "
                "artifact folder, not a `quantkit run` folder. Measure it with "
                "`quantkit bench`.\n")
    records = manifest.benchmark.get("records") or []
    if not records:
        return "## Measured\n\nThe run recorded no measurement of this target.\n"
    lines = ["## Measured\n",
             "| batch | status | p50 ms | mean ms | samples/s | metric | value | FP32 | "
             "drop (points) | size MB | measured on |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for record in records:
        latency = record.get("latency_ms") or {}
        accuracy = record.get("accuracy") or {}
        machine = record.get("machine") or {}
        where = record.get("host", "local")
        if machine.get("cpu_model"):
            where = f"{where}: {machine['cpu_model']}, {record.get('threads') or '?'} thread(s)"
        lines.append("| " + " | ".join([
            _text(record.get("batch_size")), record.get("status", ""),
            _number(latency.get("p50_ms"), 3), _number(latency.get("mean_ms"), 3),
            _number(record.get("throughput_sps"), 1), _text(accuracy.get("metric")),
            _quality(accuracy, accuracy.get("value")),
            _quality(accuracy, accuracy.get("reference_value")),
            _number(accuracy.get("drop_points"), 2),
            _number(record["size_bytes"] / 1e6 if record.get("size_bytes") else None, 3),
            where + (f" (error: {record['error']})" if record.get("error") else "")]) + " |")
    eval_set = manifest.benchmark.get("eval_set")
    if eval_set:
        lines.append(f"\nAccuracy on eval set `{eval_set.get('name')}` "
                     f"({eval_set.get('rows')} rows, {eval_set.get('fingerprint')}).")
    return "\n".join(lines) + "\n"


def _provenance(manifest: Manifest) -> str:
    lines = ["## Made from\n"]
    if manifest.source_model is None:
        lines.append(manifest.source.get("note", "No run record."))
        return "\n".join(lines) + "\n"
    for name, entry in sorted((manifest.source_model.get("files") or {}).items()):
        lines.append(f"- `{name}`: sha256 `{entry.get('sha256')}`, {entry.get('size')} bytes")
    pir = manifest.source_model.get("pir_source")
    if pir:
        source, check = pir.get("source") or {}, pir.get("equivalence") or {}
        checked = (f"checked against Paddle {check.get('paddle', ['?'])[0]}: max |diff| "
                   f"{check.get('max_abs_diff')} (output range {check.get('output_range')})"
                   if check.get("checked") else check.get("reason", "not checked"))
        lines.append(f"- translated from the Paddle 3 PIR program "
                     f"`{Path(source.get('model_file', '?')).name}` (sha256 "
                     f"`{source.get('model_sha256')}`) by {pir.get('translator')}; {checked}")
    calibration = manifest.calibration
    if calibration and manifest.precision == Precision.INT8:
        data = calibration.get("data") or {}
        lines.append(f"- calibration: algo `{calibration.get('algo')}`, "
                     f"{calibration.get('batch_nums')} batches of "
                     f"{calibration.get('batch_size')}, onnx_format "
                     f"{calibration.get('onnx_format')}; data `{data.get('name')}` "
                     f"({data.get('rows')} rows, {data.get('fingerprint')})")
    return "\n".join(lines) + "\n"


def _loading(manifest: Manifest, model_files: Sequence[str], feeds: Sequence[FeedSpec]) -> str:
    settings, profile = manifest.artifact_settings, manifest.profile
    if manifest.backend == Backend.PADDLE_INFERENCE:
        return _paddle_inference(settings["recipe"], feeds)
    if manifest.backend == Backend.PADDLE3_INFERENCE:
        return _paddle_inference(settings["recipe"], feeds, paddle3=settings.get("paddle"))
    if manifest.backend == Backend.ONNXRUNTIME:
        return _onnxruntime(settings, profile, model_files, feeds)
    if manifest.backend == Backend.PADDLE_LITE:
        return _paddle_lite(settings, profile, model_files, feeds)
    if manifest.backend == Backend.TENSORRT:
        return _tensorrt(settings["recipe"], feeds)
    if manifest.backend == Backend.OPENVINO:
        return _openvino(settings, feeds)
    return f"Backend {manifest.backend}: load `{MODEL_DIR}/` with quantkit (below).\n"


def _quantkit_way() -> str:
    return ("With quantkit installed, the same settings in one call:\n\n```python\n"
            "from quantkit.packaging import load_bundle, open_bundle_predictor\n\n"
            "bundle = load_bundle(\"path/to/bundle\")  # checks every sha256 first\n"
            "predictor = open_bundle_predictor(bundle)\n"
            "outputs = predictor.run({name: array})  # list of numpy arrays\n```\n")


def _example_input(feeds: Sequence[FeedSpec]) -> list[str]:
    return [f"{_identifier(feed.name)} = np.zeros({_shape(feed)}, dtype=np.{feed.dtype})"
            for feed in feeds]


def _paddle_inference(recipe: dict[str, Any], feeds: Sequence[FeedSpec],
                      paddle3: str | None = None) -> str:
    calls = ["config.enable_new_ir(False)  # Paddle 3: the legacy pipeline runs INT8",
             "config.enable_new_executor(False)"] if paddle3 else []
    calls += ["config.disable_gpu()",
             f"config.set_cpu_math_library_num_threads({recipe.get('threads', 1)})",
             f"config.switch_ir_optim({recipe.get('ir_optim', True)})",
             "config.enable_memory_optim()"]
    if recipe.get("onednn"):
        calls += ["config.enable_mkldnn()",
                  f"config.set_mkldnn_cache_capacity({recipe.get('cache_capacity', 10)})"]
        if recipe.get("int8"):
            ops = textwrap.wrap(", ".join(repr(op) for op in recipe.get("int8_ops", ())),
                                width=80)
            calls += ["config.enable_mkldnn_int8({  # the ops oneDNN may run in int8",
                      *[f"    {line}" for line in ops], "})"]
    else:
        calls.append("config.disable_mkldnn()")
    calls += [f"config.delete_pass({name!r})" for name in recipe.get("delete_passes", ())]
    feed_lines = []
    for feed in feeds:
        name = _identifier(feed.name)
        feed_lines += [f"handle = predictor.get_input_handle({feed.name!r})",
                       f"handle.reshape({name}.shape)", f"handle.copy_from_cpu({name})"]
    code = ["import numpy as np", "from paddle import inference", "",
            f"config = inference.Config(\"{MODEL_DIR}/model.pdmodel\", "
            f"\"{MODEL_DIR}/model.pdiparams\")", *calls,
            "predictor = inference.create_predictor(config)", "", *_example_input(feeds),
            *feed_lines, "predictor.run()",
            "outputs = [predictor.get_output_handle(name).copy_to_cpu()",
            "           for name in predictor.get_output_names()]"]
    note = ("The INT8 recipe needs a CPU with AVX2 at least; VNNI/AMX (Xeon Cascade Lake "
            "and later) give the larger speed-up.\n" if recipe.get("int8") else "")
    if paddle3:
        note += (f"Measured with `paddlepaddle=={paddle3}`; its PIR pipeline (the default for "
                 "`.json` models) drops or breaks the INT8 ops of this calibrated model.\n")
    return ("### Paddle Inference (Python)\n\nThe settings quantkit measured with "
            "(`artifact_settings.recipe` in manifest.json):\n\n```python\n" + "\n".join(code)
            + "\n```\n\n" + note + "\n" + _quantkit_way())


def _onnxruntime(settings: dict[str, Any], profile: dict[str, Any],
                 model_files: Sequence[str], feeds: Sequence[FeedSpec]) -> str:
    session = settings.get("session") or {}
    level = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
             "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}.get(
        session.get("graph_optimization", "all"), "ORT_ENABLE_ALL")
    threads = session.get("intra_op_num_threads", profile.get("threads", 1))
    entries = session.get("config_entries") or {}
    lines = ["import numpy as np", "import onnxruntime as ort", "",
             "options = ort.SessionOptions()",
             f"options.graph_optimization_level = ort.GraphOptimizationLevel.{level}",
             f"options.intra_op_num_threads = {threads}"]
    for key, value in sorted(entries.items()):
        comment = ("  # exact u8u8 int8 GEMM: u8s8 saturates int16 sums on CPUs without VNNI"
                   if key == "session.x64quantprecision" else "")
        lines.append(f"options.add_session_config_entry({key!r}, {value!r}){comment}")
    model = next((name for name in model_files if name.endswith(".onnx")), "model.onnx")
    lines += [f"session = ort.InferenceSession(\"{MODEL_DIR}/{model}\", options,",
              "                               providers=[\"CPUExecutionProvider\"])", "",
              *_example_input(feeds),
              "outputs = session.run(None, {"
              + ", ".join(f"{feed.name!r}: {_identifier(feed.name)}" for feed in feeds) + "})"]
    why = session.get("reason")
    note = f"Why these settings (decided at conversion): {why}.\n" if why else ""
    if profile.get("precision") == "int8":
        note += ("`session.x64quantprecision` = 1 is needed on x86 CPUs without VNNI/AMX, where "
                 "the default u8s8 int8 GEMM can saturate; with VNNI the default is exact and "
                 "faster. `open_bundle_predictor` (below) decides it for the host it runs on.\n")
    return ("### ONNX Runtime (Python)\n\n```python\n" + "\n".join(lines) + "\n```\n\n"
            + note + "\n" + _quantkit_way())


def _openvino(settings: dict[str, Any], feeds: Sequence[FeedSpec]) -> str:
    config = settings.get("compile") or {}
    lines = ["import numpy as np", "import openvino as ov", "",
             "core = ov.Core()", f"model = core.read_model(\"{MODEL_DIR}/model.xml\")",
             "# one static shape per batch size compiles faster than a dynamic one",
             "model.reshape({" + ", ".join(f"{feed.name!r}: [1, *{list(feed.shape[1:])}]"
                                          for feed in feeds) + "})",
             f"compiled = core.compile_model(model, \"CPU\", {config!r})", "",
             *_example_input(feeds),
             "outputs = compiled({" + ", ".join(f"{feed.name!r}: {_identifier(feed.name)}"
                                               for feed in feeds) + "})"]
    note = (f"Read with OpenVINO's {settings.get('read_with', 'paddle')} frontend at "
            f"conversion; INT8 models carry quantkit's scales as FakeQuantize ops and "
            f"int8 weights ({settings.get('quantization') or 'no quantization'}). "
            "`INFERENCE_PRECISION_HINT` f32 keeps the float parts in FP32 (bf16 is faster "
            "where the CPU has it, at some accuracy).\n")
    return ("### OpenVINO (Python)\n\n```python\n" + "\n".join(lines) + "\n```\n\n" + note
            + "\n" + _quantkit_way())


def _paddle_lite(settings: dict[str, Any], profile: dict[str, Any],
                 model_files: Sequence[str], feeds: Sequence[FeedSpec]) -> str:
    nb = next((name for name in model_files if name.endswith(".nb")), "model.nb")
    threads = settings.get("threads", profile.get("threads", 1))
    arm = "arm" in str(settings.get("valid_targets", ""))
    python = ["import numpy as np",
              "from paddlelite.lite import MobileConfig, PowerMode, create_paddle_predictor"
              if arm else "from paddlelite.lite import MobileConfig, create_paddle_predictor",
              "", "config = MobileConfig()", f"config.set_model_from_file(\"{MODEL_DIR}/{nb}\")"]
    if arm:
        python += [f"config.set_threads({threads})",
                   "config.set_power_mode(PowerMode.LITE_POWER_HIGH)"]
    python += ["predictor = create_paddle_predictor(config)", "", *_example_input(feeds)]
    python += [f"predictor.get_input_by_name({feed.name!r}).from_numpy({_identifier(feed.name)})"
               for feed in feeds]
    python += ["predictor.run()",
               "outputs = [predictor.get_output_by_name(name).numpy()",
               "           for name in predictor.get_output_names()]"]
    shapes = {feed.name: list(profile.get("input_shapes", {}).get(feed.name)
                              or [1, *feed.shape[1:]]) for feed in feeds}
    cpp = ["#include <vector>", "#include \"paddle_api.h\"  // Paddle Lite's inference library",
           "", "using namespace paddle::lite_api;", "", "int main() {",
           "  MobileConfig config;", f"  config.set_model_from_file(\"{MODEL_DIR}/{nb}\");"]
    if arm:
        cpp += [f"  config.set_threads({threads});",
                "  config.set_power_mode(LITE_POWER_HIGH);"]
    cpp.append("  auto predictor = CreatePaddlePredictor<MobileConfig>(config);")
    for index, feed in enumerate(feeds):
        ctype = {"float32": "float", "int64": "int64_t", "int32": "int32_t"}.get(feed.dtype,
                                                                                "float")
        dims = ", ".join(str(max(dim, 1)) for dim in shapes[feed.name])
        cpp += [f"  auto input_{index} = predictor->GetInput({index});  // {feed.name}",
                f"  input_{index}->Resize({{{dims}}});",
                f"  {ctype}* data_{index} = input_{index}->mutable_data<{ctype}>();",
                f"  // fill data_{index} with {' x '.join(dims.split(', '))} values"]
    cpp += ["  predictor->Run();", "  auto output = predictor->GetOutput(0);",
            "  const float* result = output->data<float>();",
            "  std::vector<int64_t> shape = output->shape();", "  return 0;", "}"]
    where = ("Run it on the ARM board with Paddle Lite's light library built for it "
             "(`libpaddle_light_api_shared.so` from the inference library release matching "
             f"opt {settings.get('opt_version', '')}); pip wheels of paddlelite exist for "
             "x86 only.\n" if arm else
             "The x86 `paddlelite` wheel runs it (pin `numpy<2`: paddlelite 2.13rc0 corrupts "
             "input under numpy 2).\n")
    return ("### Paddle Lite `MobileConfig` (Python)\n\n```python\n" + "\n".join(python)
            + "\n```\n\n### Paddle Lite `MobileConfig` (C++)\n\n```cpp\n" + "\n".join(cpp)
            + "\n```\n\n" + where + "\n" + _quantkit_way())


def _tensorrt(recipe: dict[str, Any], feeds: Sequence[FeedSpec]) -> str:
    precision = "Int8" if recipe.get("precision") == "int8" else "Float32"
    code = ["from paddle import inference", "",
            f"config = inference.Config(\"{MODEL_DIR}/model.pdmodel\", "
            f"\"{MODEL_DIR}/model.pdiparams\")",
            f"config.enable_use_gpu({recipe.get('gpu_memory_mb', 256)}, "
            f"{recipe.get('device_id', 0)})",
            "# engines are built at first run; keep the cache outside the bundle folder",
            "# (quantkit verify refuses files the manifest does not list)",
            "config.set_optim_cache_dir(\"trt_engine_cache\")",
            "config.enable_tensorrt_engine(",
            f"    workspace_size={recipe.get('workspace_size')},",
            f"    max_batch_size={recipe.get('max_batch_size')},",
            f"    min_subgraph_size={recipe.get('min_subgraph_size')},",
            f"    precision_mode=inference.PrecisionType.{precision},",
            f"    use_static={recipe.get('use_static')},",
            f"    use_calib_mode={recipe.get('use_calib_mode')},",
            f"    use_cuda_graph={recipe.get('use_cuda_graph')})"]
    if recipe.get("min_shapes"):
        code += [f"config.set_trt_dynamic_shape_info({recipe['min_shapes']},",
                 f"                                   {recipe['max_shapes']},",
                 f"                                   {recipe['opt_shapes']})"]
    elif recipe.get("collect_shapes"):
        code.append("config.enable_tuned_tensorrt_dynamic_shape(\"shape_range_info.pbtxt\", "
                    "True)  # collect it first on the GPU host")
    code.append("predictor = inference.create_predictor(config)")
    return ("### Paddle Inference + TensorRT (Python, on the GPU host)\n\n```python\n"
            + "\n".join(code) + "\n```\n\nNeeds paddlepaddle-gpu built with TensorRT. "
            "A calibrated (QDQ) model carries its scales, so `use_calib_mode` stays False.\n\n"
            + _quantkit_way())


def _verifying(manifest: Manifest, bundle_name: str) -> str:
    device_note = ("\nThe packaging machine could not run this target, so no output was "
                   "recorded. Where the target cannot run, `quantkit verify` checks the "
                   "checksums and reports the smoke run skipped with the reason; where it can, "
                   "it also runs `smoke/input.npz` and checks the outputs are finite.\n"
                   if manifest.smoke.output is None else
                   "\nRun it on the deployment host: it runs `smoke/input.npz` through the "
                   "model and compares with `smoke/output.npz` "
                   f"(atol {manifest.smoke.tolerance.atol_fraction:g} of the output range, "
                   f"rtol {manifest.smoke.tolerance.rtol:g}).\n")
    return ("## Verify it\n\n```\nquantkit verify " + bundle_name + "          # the folder\n"
            "quantkit verify " + bundle_name + ".tar.gz   # or the archive\n```\n\n"
            "It recomputes the sha256 and size of every file listed in manifest.json and "
            "refuses a changed, truncated, missing or extra file." + device_note)


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"x_{cleaned}"


def _shape(feed: FeedSpec) -> str:
    dims = tuple(max(dim, 1) for dim in feed.shape)
    return str(dims) if len(dims) != 1 else f"({dims[0]},)"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _quality(accuracy: dict, value) -> str:
    """A headline value of a results.json record in its unit (fraction as %, or dB)."""
    return _number(value, 3) + " dB" if accuracy.get("unit") == "dB" and value is not None \
        else _percent(value)


def _percent(value: Any) -> str:
    return "" if value is None else f"{value * 100:.2f}%"
