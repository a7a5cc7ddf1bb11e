"""The bad-input catalogue: every command, fed what users get wrong, refuses cleanly.

Each case runs the real `quantkit` command in a child process and asserts the contract of
the kit's refusals: a non-zero exit, exactly one error line that names the culprit (file,
key, flag or input) in the user's terms, no traceback, and nothing left behind, inside or
outside `--out` (the whole test folder is compared before and after). Categories: names
from files used as paths, native crashes, archives, typed options, labels, numeric flags,
operating-system errors, leftovers and signals, wording.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401 - before paddle (zlib)

TINY = Path(__file__).parent / "data" / "paddle3"
QUANTKIT = [sys.executable, "-m", "quantkit.cli"]
ENV = {**os.environ, "GLOG_minloglevel": "3"}


def quantkit_cli(*args, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*QUANTKIT, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=ENV)


def refused(result: subprocess.CompletedProcess, *words: str, status: int | None = None) -> str:
    """Assert the refusal contract; return the error line."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode != 0, (result.stdout[-2000:], result.stderr[-2000:])
    if status is not None:
        assert result.returncode == status, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines()
              if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, result.stderr[-3000:]
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def snapshot(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.fixture
def sandbox(tmp_path):
    """A folder for a case's inputs and outputs, and a check that nothing else appears."""
    class Sandbox:
        root = tmp_path

        def __init__(self) -> None:
            self.before: set[str] | None = None

        def freeze(self) -> None:
            self.before = snapshot(tmp_path)

        def unchanged(self) -> None:
            assert snapshot(tmp_path) == self.before, sorted(snapshot(tmp_path) ^ self.before)

    return Sandbox()


# --- shared inputs ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, Path]:
    """Artifacts, data, a calibrated model and a bundle of the tiny CNN (built once)."""
    from quantkit.calibration.calibrate import calibrate
    from quantkit.calibration.config import CalibrationConfig
    from quantkit.packaging import package
    from quantkit.targets.convert import convert

    root = tmp_path_factory.mktemp("bad-inputs")
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (32, 1, 28, 28)).astype(np.float32)
    np.savez(root / "calib.npz", image=images, labels=np.arange(32) % 10)
    made = {"root": root, "calib": root / "calib.npz"}
    for name in ("intel-cpu-fp32", "x86-lite-fp32", "onnxruntime-fp32", "arm-lite-fp32"):
        made[name] = convert(TINY, name, root / name).folder
    made["int8"] = calibrate(None, TINY, root / "int8", CalibrationConfig(batch_size=8, batch_nums=2),
                             data_loader=[{"image": images[i:i + 8]} for i in range(0, 16, 8)]).path
    made["bundle"] = package(made["intel-cpu-fp32"], root / "dist")
    return made


def _copy(source: Path, to: Path) -> Path:
    shutil.copytree(source, to)
    return to


def _edit_json(path: Path, **changes) -> None:
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def _profile(folder: Path, text: str, name: str = "mine.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


PROFILE = 'name = "{name}"\nbackend = "paddle-inference"\nprecision = "fp32"\n'


# --- 1. names read from files are used as paths ------------------------------------------

@pytest.mark.parametrize("name", ["../..", "/tmp/quantkit-evil", "a/b", "..", ".hidden", "a b"])
def test_a_profile_name_that_is_a_path_is_refused_before_anything_is_written(sandbox, name):
    profile = _profile(sandbox.root, PROFILE.format(name=name))
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", profile, "--out", sandbox.root / "out"),
            "bad target name", repr(name))
    sandbox.unchanged()
    assert not Path("/tmp/quantkit-evil").exists()


def test_run_refuses_a_profile_named_like_a_path_before_calibrating(sandbox, shared):
    profile = _profile(sandbox.root, PROFILE.format(name="../../escape"))
    sandbox.freeze()
    refused(quantkit_cli("run", TINY, "--calib", shared["calib"], "--targets", profile,
                         "--out", sandbox.root / "run"), "bad target name", "'../../escape'")
    sandbox.unchanged()


def test_a_target_name_on_the_command_line_that_is_a_path_is_refused(sandbox):
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", "../../etc/passwd", "--out",
                         sandbox.root / "out"), "bad target", "'../../etc/passwd'")
    sandbox.unchanged()


@pytest.mark.parametrize("record, field", [("artifact.json", "target"),
                                           ("profile.json", "name")])
def test_package_refuses_an_artifact_whose_records_name_a_path(sandbox, shared, record, field):
    artifact = _copy(shared["intel-cpu-fp32"], sandbox.root / "artifact")
    _edit_json(artifact / record, **{field: "../../evil"})
    sandbox.freeze()
    refused(quantkit_cli("package", artifact, "--out", sandbox.root / "dist", "--force"),
            "'../../evil'")
    sandbox.unchanged()


def test_verify_refuses_a_manifest_whose_target_is_a_path(sandbox, shared):
    bundle = _copy(shared["bundle"], sandbox.root / "bundle")
    _edit_json(bundle / "manifest.json", target="../x")
    sandbox.freeze()
    refused(quantkit_cli("verify", bundle), "manifest.json", "'../x'")
    sandbox.unchanged()


def test_report_refuses_a_results_record_whose_target_is_a_path(sandbox, shared):
    from quantkit.benchmark.results import BenchRecord, BenchResults

    results = BenchResults(records=[BenchRecord("x", "onnxruntime", "fp32", "cpu", "ok")])
    path = sandbox.root / "results.json"
    results.save(path)
    data = json.loads(path.read_text())
    data["records"][0]["target"] = "../../x"
    path.write_text(json.dumps(data))
    sandbox.freeze()
    refused(quantkit_cli("report", path, "--out", sandbox.root / "out"), "results.json",
            "'../../x'")
    sandbox.unchanged()


def test_a_hosts_file_host_name_that_is_a_path_is_refused(sandbox, shared):
    hosts = sandbox.root / "hosts.toml"
    hosts.write_text('[hosts."../x"]\nkind = "ssh"\naddress = "127.0.0.1"\n')
    sandbox.freeze()
    refused(quantkit_cli("bench", shared["intel-cpu-fp32"], "--remote", "../x", "--hosts",
                         hosts), "host name", "'../x'")
    sandbox.unchanged()


# --- 2. --force replaces only what quantkit wrote -----------------------------------------

def test_force_refuses_the_current_directory(sandbox, shared):
    here = _copy(shared["intel-cpu-fp32"], sandbox.root / "here")  # even a quantkit folder
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", "intel-cpu-fp32", "--out", ".",
                         "--force", cwd=here), "current directory")
    sandbox.unchanged()


def test_force_refuses_a_folder_that_holds_the_input(sandbox):
    models = sandbox.root / "models"
    shutil.copytree(TINY, models / "tiny")
    (models / "results.json").write_text("{}")  # looks like quantkit's
    sandbox.freeze()
    refused(quantkit_cli("convert", models / "tiny", "--target", "intel-cpu-fp32", "--out",
                         models, "--force"), "holds the input")
    sandbox.unchanged()


def test_force_refuses_a_folder_quantkit_did_not_write(sandbox):
    mine = sandbox.root / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", "intel-cpu-fp32", "--out", mine,
                         "--force"), "only folders quantkit wrote", str(mine))
    sandbox.unchanged()


def test_force_refuses_a_regular_file_and_leaves_no_old_copy(sandbox):
    target = sandbox.root / "out"
    target.write_text("not a folder")
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", "intel-cpu-fp32", "--out", target,
                         "--force"), "is a file")
    sandbox.unchanged()


def test_force_replaces_an_earlier_artifact(sandbox, shared):
    out = _copy(shared["intel-cpu-fp32"], sandbox.root / "out")
    done = quantkit_cli("convert", TINY, "--target", "onnxruntime-fp32", "--out", out,
                        "--force")
    assert done.returncode == 0, done.stderr
    assert (out / "model.onnx").is_file() and not (out / "model.pdmodel").exists()
    assert not [p for p in sandbox.root.iterdir() if p.name.startswith(".")]


# --- 3. native loads of user files -------------------------------------------------------

@pytest.fixture
def broken_lite(sandbox, shared) -> Path:
    artifact = _copy(shared["x86-lite-fp32"], sandbox.root / "broken-lite")
    (artifact / "model.nb").write_bytes(np.random.default_rng(1).bytes(4096))
    return artifact


def test_package_of_a_corrupt_nb_is_a_clean_refusal(sandbox, broken_lite):
    sandbox.freeze()
    refused(quantkit_cli("package", broken_lite, "--out", sandbox.root / "dist"),
            "Paddle Lite cannot load", "model.nb")
    sandbox.unchanged()


def test_serve_of_a_corrupt_nb_is_a_clean_refusal(sandbox, broken_lite):
    sandbox.freeze()
    refused(quantkit_cli("serve", broken_lite, "--port", "0", timeout=120),
            "Paddle Lite cannot load")
    sandbox.unchanged()


def test_bench_of_a_corrupt_nb_records_the_crash_and_exits_non_zero(sandbox, broken_lite):
    out = sandbox.root / "results"
    done = quantkit_cli("bench", broken_lite, "--iterations", "2", "--out", out)
    refused(done, "did not finish", "x86-lite-fp32", status=1)
    record = json.loads((out / "results.json").read_text())["records"][0]
    assert record["status"] == "crashed" and "SIGABRT" in record["error"]


def test_bench_that_measures_nothing_exits_non_zero(sandbox, shared):
    """An ARM artifact on x86: skipped with the reason, and the exit status says so."""
    done = quantkit_cli("bench", shared["arm-lite-fp32"], "--iterations", "2")
    refused(done, "nothing was measured", status=1)
    assert "skipped" in done.stdout  # the table's status column
    assert "arm-lite-fp32: skipped: cannot run here: needs an ARM device" in done.stderr


@pytest.mark.parametrize("command", ["bench", "serve"])
@pytest.mark.parametrize("damage", ["onnx", "artifact-json", "artifact-keys"])
def test_a_corrupt_artifact_is_refused_by_bench_and_serve(sandbox, shared, command, damage):
    artifact = _copy(shared["onnxruntime-fp32"], sandbox.root / "artifact")
    if damage == "onnx":
        (artifact / "model.onnx").write_bytes(b"\x08\x07garbage" * 100)
        culprit = "model.onnx"
    elif damage == "artifact-json":
        (artifact / "artifact.json").write_text("{not json")
        culprit = "artifact.json"
    else:
        _edit_json(artifact / "artifact.json", files="model.onnx")
        culprit = "'files'"
    sandbox.freeze()
    args = ["--port", "0"] if command == "serve" else ["--iterations", "2"]
    refused(quantkit_cli(command, artifact, *args, timeout=120), culprit)
    sandbox.unchanged()


# --- 4. archives ---------------------------------------------------------------------------

def _archive(folder: Path, path: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A .tar.gz of a bundle folder with `extra` members added after the manifest."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, recursive=False)
        for item in sorted(folder.rglob("*")):
            tar.add(item, arcname=f"{folder.name}/{item.relative_to(folder)}", recursive=False)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(f"{folder.name}/{name}")
            info.size = len(data)
            import io

            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("command", ["verify", "serve"])
def test_an_archive_that_expands_beyond_its_manifest_is_refused_before_extracting(
        sandbox, shared, command):
    bomb = sandbox.root / "bomb.tar.gz"
    _archive(shared["bundle"], bomb, {"model/zz-padding.bin": bytes(300 << 20)})
    assert bomb.stat().st_size < (2 << 20)  # 300 MiB of zeros, compressed
    sandbox.freeze()
    started = time.monotonic()
    args = ["--port", "0"] if command == "serve" else []
    refused(quantkit_cli(command, bomb, *args, timeout=120), str(bomb),
            "model/zz-padding.bin", "not listed")
    assert time.monotonic() - started < 60
    sandbox.unchanged()


def test_an_archive_member_larger_than_the_manifest_says_is_refused(sandbox, shared):
    bundle = _copy(shared["bundle"], sandbox.root / "bundle")
    with open(bundle / "model" / "model.pdiparams", "ab") as handle:
        handle.write(bytes(10 << 20))
    archive = _archive(bundle, sandbox.root / "grown.tar.gz")
    sandbox.freeze()
    refused(quantkit_cli("verify", archive), str(archive), "model/model.pdiparams",
            "the manifest declares")
    sandbox.unchanged()


# --- 5. typed options -----------------------------------------------------------------------

@pytest.mark.parametrize("backend, precision, option, value, words", [
    ("paddle-inference", "fp32", "onednn", '"no"', ["options.onednn", "true or false"]),
    ("paddle-inference", "fp32", "cache_capacity", '"lots"', ["options.cache_capacity",
                                                               "whole number"]),
    ("paddle-inference", "int8", "int8_ops", '["conv2d", "softmax"]', ["options.int8_ops"]),
    ("paddle-inference", "fp32", "delete_passes", "3", ["options.delete_passes"]),
    ("tensorrt", "int8", "workspace_size", '"1GB"', ["options.workspace_size"]),
    ("tensorrt", "int8", "use_static", '"true"', ["options.use_static"]),
    ("tensorrt", "int8", "device_id", "-1", ["options.device_id"]),
    ("paddle-lite", "fp32", "weight_only_int8", '"false"', ["options.weight_only_int8"]),
    ("paddle-lite", "fp32", "timeout_s", "nan", ["options.timeout_s", "finite"]),
    ("onnxruntime", "fp32", "opset_version", "13.0", ["options.opset_version", "whole number"]),
    ("onnxruntime", "fp32", "graph_optimization", '"max"', ["options.graph_optimization"]),
    ("onnxruntime", "fp32", "int8_weights", "1", ["options.int8_weights"]),
])
def test_option_types_are_checked_for_every_backend(sandbox, backend, precision, option,
                                                    value, words):
    device = "device = \"cpu\"\n" if backend == "paddle-lite" else ""
    profile = _profile(sandbox.root, f'name = "mine"\nbackend = "{backend}"\nprecision = '
                       f'"{precision}"\n{device}[options]\n{option} = {value}\n')
    sandbox.freeze()
    error = refused(quantkit_cli("convert", TINY, "--target", profile, "--out",
                                 sandbox.root / "out"), *words)
    assert str(profile) in error
    sandbox.unchanged()


@pytest.mark.parametrize("line, words", [
    ("threads = true", ["'threads'"]),
    ("threads = 2.5", ["'threads'"]),
    ('batch_sizes = "1"', ["'batch_sizes'"]),
    ("batch_sizes = [1, 100000000]", ["'batch_sizes'", "65536"]),
    ("options = 3", ["'options'"]),
    ('input_shapes = {image = "1x28"}', ["'input_shapes.image'"]),
    ('device = "tpu"', ["'device'", "tpu"]),
    ("thread = 2", ["unknown key 'thread'", "did you mean 'threads'"]),
])
def test_profile_values_are_checked(sandbox, line, words):
    profile = _profile(sandbox.root, PROFILE.format(name="mine") + line + "\n")
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", profile, "--out", sandbox.root / "out"),
            *words)
    sandbox.unchanged()


def test_a_profile_that_is_not_toml_or_is_a_folder_is_named(sandbox):
    broken = _profile(sandbox.root, "name = \n", "broken.toml")
    folder = sandbox.root / "folder.toml"
    folder.mkdir()
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", broken, "--out", sandbox.root / "o"),
            "not valid TOML", str(broken))
    refused(quantkit_cli("convert", TINY, "--target", folder, "--out", sandbox.root / "o"),
            str(folder))
    sandbox.unchanged()


# --- 6. labels of image folders ------------------------------------------------------------

def _image_folder(root: Path, classes: list[str]) -> Path:
    from PIL import Image

    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(np.full((28, 28), 40 * index, np.uint8)).save(root / name /
                                                                         f"{index}.png")
    return root


def test_an_image_folder_mixing_numbered_and_named_classes_is_refused(sandbox, shared):
    folder = _image_folder(sandbox.root / "eval", ["0", "1", "2", "cats"])
    sandbox.freeze()
    refused(quantkit_cli("bench", shared["intel-cpu-fp32"], "--eval", folder,
                         "--iterations", "2"), "mix numbers and names", "'cats'")
    sandbox.unchanged()


def test_named_class_folders_say_which_label_each_name_got(sandbox, shared):
    folder = _image_folder(sandbox.root / "eval", ["cats", "dogs"])
    done = quantkit_cli("bench", shared["intel-cpu-fp32"], "--eval", folder, "--iterations",
                        "2")
    assert done.returncode == 0, done.stderr
    assert "cats=0, dogs=1" in done.stderr


# --- 7. numeric flags are checked when parsed -----------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--duration", "nan"], ["'--duration'", "not a finite number"]),
    (["--duration", "inf"], ["'--duration'", "not a finite number"]),
    (["--duration", "-1"], ["'--duration'", "out of range"]),
    (["--timeout", "0"], ["'--timeout'", "out of range"]),
    (["--iterations", "0"], ["'--iterations'", "out of range"]),
    (["--warmup", "-1"], ["'--warmup'", "out of range"]),
    (["--threads", "0"], ["'--threads'", "out of range"]),
    (["--batch-sizes", "100000000"], ["'--batch-sizes'", "out of range", "65536"]),
    (["--batch-sizes", "1,1"], ["'--batch-sizes'", "listed twice"]),
    (["--batch-sizes", "1,,4"], ["'--batch-sizes'", "empty entry"]),
    (["--batch-sizes", "one"], ["'--batch-sizes'", "not a whole number"]),
    (["--eval-limit", "0"], ["'--eval-limit'", "out of range"]),
    (["--iterations", "2.5"], ["'--iterations'", "not a whole number"]),
])
def test_bench_numbers_are_checked_at_parse_time(sandbox, shared, args, words):
    sandbox.freeze()
    started = time.monotonic()
    refused(quantkit_cli("bench", shared["intel-cpu-fp32"], *args, "--out",
                         sandbox.root / "out"), *words, status=2)
    assert time.monotonic() - started < 30  # refused, not measured
    sandbox.unchanged()


@pytest.mark.parametrize("args, words", [
    (["--max-drop", "nan"], ["'--max-drop'", "not a finite number"]),
    (["--max-drop", "-1"], ["'--max-drop'", "out of range"]),
    (["--max-trials", "0"], ["'--max-trials'", "out of range"]),
    (["--calib-batch-size", "0"], ["'--calib-batch-size'", "out of range"]),
    (["--calib-batches", "0"], ["'--calib-batches'", "out of range"]),
    (["--calib-limit", "-3"], ["'--calib-limit'", "out of range"]),
    (["--targets", "intel-cpu-fp32,intel-cpu-fp32"], ["'--targets'", "listed twice"]),
    (["--targets", ""], ["'--targets'", "empty entry"]),
])
def test_run_numbers_and_lists_are_checked_at_parse_time(sandbox, shared, args, words):
    base = {"--targets": "intel-cpu-fp32"}
    given = dict(zip(args[::2], args[1::2]))
    argv = ["run", TINY, "--calib", shared["calib"], "--out", sandbox.root / "run",
            *[item for key, value in {**base, **given}.items() for item in (key, value)]]
    sandbox.freeze()
    refused(quantkit_cli(*argv), *words, status=2)
    sandbox.unchanged()


@pytest.mark.parametrize("args, words", [
    (["analyze", TINY, "--calib", "X", "--eval", "X", "--top", "-1"], ["'--top'"]),
    (["demo", "--steps", "-5"], ["'--steps'", "out of range"]),
    (["demo", "--scale", "0"], ["'--scale'", "out of range"]),
    (["demo", "--scale", "nan"], ["'--scale'", "not a finite number"]),
    (["calibrate", TINY, "--calib", "X", "--out", "Q", "--calib-batch-size", "0"],
     ["'--calib-batch-size'"]),
    (["serve", "X", "--max-body-mb", "nan"], ["'--max-body-mb'", "not a finite number"]),
    (["serve", "X", "--port", "70000"], ["'--port'", "out of range"]),
    (["serve", "X", "--max-batch", "0"], ["'--max-batch'", "out of range"]),
    (["serve", "X", "--workers", "0"], ["'--workers'", "out of range"]),
    (["serve", "X", "--max-wait-ms", "-2"], ["'--max-wait-ms'", "out of range"]),
])
def test_other_commands_check_their_numbers_at_parse_time(sandbox, args, words):
    sandbox.freeze()
    refused(quantkit_cli(*args, cwd=sandbox.root), *words, status=2)
    sandbox.unchanged()


def test_demo_refuses_a_width_it_cannot_build_before_training(sandbox):
    sandbox.freeze()
    refused(quantkit_cli("demo", "--scale", "100", "--out", sandbox.root / "demo"),
            "--scale", "0.05 to 4")
    sandbox.unchanged()


# --- 8. operating-system errors: one line naming the path ----------------------------------

def test_out_below_a_regular_file_is_named(sandbox):
    (sandbox.root / "file").write_text("x")
    sandbox.freeze()
    refused(quantkit_cli("convert", TINY, "--target", "intel-cpu-fp32", "--out",
                         sandbox.root / "file" / "out"), str(sandbox.root / "file"),
            "is a file, not a folder")
    sandbox.unchanged()


def test_out_in_proc_is_named(sandbox):
    refused(quantkit_cli("convert", TINY, "--target", "intel-cpu-fp32", "--out",
                         "/proc/quantkit-test/out"), "/proc/quantkit-test")


def test_bench_checks_out_before_measuring(sandbox, shared):
    (sandbox.root / "file").write_text("x")
    sandbox.freeze()
    started = time.monotonic()
    refused(quantkit_cli("bench", shared["intel-cpu-fp32"], "--duration", "30", "--out",
                         sandbox.root / "file" / "out"), "--out", "is a file")
    assert time.monotonic() - started < 30
    sandbox.unchanged()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 160 KiB tmpfs (needs root and mount(8)); unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}): the full-disk "
                    "cases need root and mount(8)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.fixture
def read_only_disk(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_out_on_a_read_only_file_system_is_named(read_only_disk):
    refused(quantkit_cli("convert", TINY, "--target", "intel-cpu-fp32", "--out",
                         read_only_disk / "out"), str(read_only_disk), "read-only")
    assert not list(read_only_disk.iterdir())


def _fill(disk: Path, leave: int) -> None:
    """Fill the small disk up to `leave` bytes of free space."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "ballast").write_bytes(bytes(max(0, free - leave)))


@pytest.mark.parametrize("command", ["convert", "calibrate", "package", "bench"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk, shared, command):
    _fill(tiny_disk, leave=12 << 10)  # room for the first files, not for all of them
    out = tiny_disk / "out"
    args = {"convert": ["convert", TINY, "--target", "intel-cpu-fp32", "--out", out],
            "calibrate": ["calibrate", TINY, "--calib", shared["calib"], "--out", out,
                          "--calib-batch-size", "8", "--calib-batches", "2"],
            "package": ["package", shared["intel-cpu-fp32"], "--out", out],
            "bench": ["bench", shared["intel-cpu-fp32"], "--iterations", "2", "--out", out,
                      "--eval", shared["calib"]]}[command]
    before = snapshot(tiny_disk)
    refused(quantkit_cli(*args), "no space left")
    # bench keeps what it measured (results.json is saved after every target); every
    # other command leaves nothing, and nothing is ever left half-written.
    kept = {"out", "out/results.json", "out/results.csv", "out/results.md"} \
        if command == "bench" else set()
    assert snapshot(tiny_disk) - before <= kept
    assert not [path for path in tiny_disk.rglob("*") if ".partial" in path.name]


@pytest.mark.parametrize("part", ["model.pdmodel", "model.pdiparams"])
def test_an_unreadable_model_file_is_named(sandbox, part):
    """Tests run as root, which reads any file: a folder in the file's place stands in."""
    model = _copy(TINY, sandbox.root / "model")
    (model / part).unlink()
    (model / part).mkdir()
    sandbox.freeze()
    refused(quantkit_cli("convert", model, "--target", "intel-cpu-fp32", "--out",
                         sandbox.root / "out", "--model-filename", "model.pdmodel",
                         "--params-filename", "model.pdiparams"), part)
    sandbox.unchanged()


# --- 9. data the calibration cannot use -------------------------------------------------------

def test_calibrating_a_quantized_model_is_refused(sandbox, shared):
    sandbox.freeze()
    refused(quantkit_cli("calibrate", shared["int8"], "--calib", shared["calib"], "--out",
                         sandbox.root / "q"), "already quantized", "calibrate the FP32 model")
    sandbox.unchanged()


def test_a_zero_byte_npz_is_named(sandbox):
    empty = sandbox.root / "empty.npz"
    empty.write_bytes(b"")
    sandbox.freeze()
    refused(quantkit_cli("calibrate", TINY, "--calib", empty, "--out", sandbox.root / "q"),
            "calibration data", str(empty), "empty file")
    sandbox.unchanged()


def test_huge_but_finite_calibration_values_are_handled(sandbox):
    data = sandbox.root / "huge.npz"
    images = np.random.default_rng(0).uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)
    images[3, 0, 5, 5] = 1e30
    np.savez(data, image=images)
    done = quantkit_cli("calibrate", TINY, "--calib", data, "--out", sandbox.root / "q",
                        "--calib-batch-size", "8", "--calib-batches", "2")
    assert "Traceback" not in done.stderr
    if done.returncode != 0:  # overflowing activations: refused naming the tensor
        refused(done, "contains Inf")
        assert not (sandbox.root / "q").exists()


def test_calibration_data_errors_use_the_calibration_words(sandbox):
    data = sandbox.root / "bad.npz"
    np.savez(data, image=np.zeros((4, 3, 28, 28), np.float32))
    sandbox.freeze()
    error = refused(quantkit_cli("calibrate", TINY, "--calib", data, "--out",
                                 sandbox.root / "q"), "calibration data", "'image'")
    assert "eval" not in error
    refused(quantkit_cli("calibrate", TINY, "--calib", data, "--calib-limit", "0", "--out",
                         sandbox.root / "q"), "'--calib-limit'")
    sandbox.unchanged()


def test_max_drop_without_eval_data_names_the_flag(sandbox, shared):
    sandbox.freeze()
    refused(quantkit_cli("calibrate", TINY, "--calib", shared["calib"], "--out",
                         sandbox.root / "q", "--max-drop", "1"), "--max-drop", "--eval")
    sandbox.unchanged()


# --- 10. signals clean up: partial outputs and child processes -----------------------------

def _start(*args, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([*QUANTKIT, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=ENV,
                            start_new_session=True)


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(item) for item in found.stdout.split()]


def test_sigterm_during_calibration_leaves_nothing(sandbox, shared):
    data = sandbox.root / "many.npz"
    np.savez(data, image=np.random.default_rng(0).uniform(-1, 1, (2048, 1, 28, 28))
             .astype(np.float32))
    sandbox.freeze()
    process = _start("calibrate", TINY, "--calib", data, "--out", sandbox.root / "q",
                     "--calib-batch-size", "8", "--calib-batches", "256", "--algo", "KL")
    _wait_for(lambda: any(".partial" in path.name for path in sandbox.root.iterdir()))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr and "terminated" in stderr
    sandbox.unchanged()


def test_sigterm_during_an_onnx_export_stops_paddle2onnx_too(sandbox):
    sandbox.freeze()
    process = _start("convert", TINY, "--target", "onnxruntime-fp32", "--out",
                     sandbox.root / "out")
    children: list[int] = []

    def exporting() -> bool:
        children[:] = _children(process.pid)
        return bool(children) or process.poll() is not None

    _wait_for(exporting)
    if process.poll() is not None:
        pytest.skip("the export finished before it could be interrupted")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    for child in children:
        _wait_for(lambda: not Path(f"/proc/{child}").exists(), timeout=10)
    sandbox.unchanged()


def test_ctrl_c_in_run_before_any_measurement_keeps_nothing_and_says_so(sandbox, shared):
    sandbox.freeze()
    process = _start("run", TINY, "--calib", shared["calib"], "--targets",
                     "onnxruntime-fp32,intel-cpu-fp32", "--out", sandbox.root / "run",
                     "--calib-batch-size", "8", "--calib-batches", "2")
    _wait_for(lambda: (sandbox.root / "run" / "artifacts").exists())
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted; nothing was kept" in stderr and "results.json" not in stderr
    sandbox.unchanged()


# --- 11. wording -------------------------------------------------------------------------

def test_a_folder_of_several_models_names_the_flags(sandbox):
    models = sandbox.root / "models"
    models.mkdir()
    for stem in ("a", "b"):
        shutil.copyfile(TINY / "model.pdmodel", models / f"{stem}.pdmodel")
    sandbox.freeze()
    refused(quantkit_cli("convert", models, "--target", "intel-cpu-fp32", "--out",
                         sandbox.root / "out"), "--model-filename", "--params-filename")
    sandbox.unchanged()


def test_mean_std_refusal_counts_the_channels(sandbox, shared):
    folder = _image_folder(sandbox.root / "eval", ["0", "1"])
    refused(quantkit_cli("bench", shared["intel-cpu-fp32"], "--eval", folder, "--mean", "0.5",
                         "--mean", "0.5", "--iterations", "2"),
            "--mean needs 1 value", "1-channel")


def test_archive_errors_name_the_archive_not_a_temporary_folder(sandbox, shared):
    bundle = _copy(shared["bundle"], sandbox.root / "bundle")
    (bundle / "README.md").write_text("tampered")
    archive = _archive(bundle, sandbox.root / "tampered.tar.gz")
    error = refused(quantkit_cli("verify", archive), str(archive))
    assert "quantkit-verify-" not in error and "/tmp/tmp" not in error
