"""One legacy translation per PIR model: made once, checked once, kept by content.

`legacy_twin(json, params)` returns a folder holding `model.pdmodel` + `model.pdiparams`
(the translation) and `pir_source.json` (the record: source files and hashes, op counts,
and the equivalence check against Paddle 3). The folder is named by the sha256 of both
source files, so a re-saved or retrained model gets a new translation and an unchanged one
costs nothing. The check runs when the Paddle 3 side environment exists; without it the
record says so and why, and a warning names the command that makes it.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from quantkit.atomic import staged_folder
from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE, PIR_SOURCE_RECORD, user_cache
from quantkit.hashing import file_sha256
from quantkit.records import read_json, write_json

# Non-batch dims a PIR model leaves dynamic get this size in the equivalence batch; dim 0
# gets EQUIVALENCE_BATCH. 64 keeps every stride-32 backbone's last feature map 2 x 2.
EQUIVALENCE_BATCH = 2
EQUIVALENCE_DYNAMIC_DIM = 64
TRANSLATOR_VERSION = 1  # bump when a translation rule changes: old cache entries are redone


def cache_dir() -> Path:
    return user_cache("pir")


def source_key(json_file: Path, params_file: Path) -> str:
    digest = hashlib.sha256()
    digest.update(f"translator {TRANSLATOR_VERSION}\n".encode())
    for path in (json_file, params_file):
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def legacy_twin(json_file: Path, params_file: Path, check: bool | None = None,
                shapes: dict | None = None) -> Path:
    """The translation's folder, translating (and checking) only on the first call.

    `check` None checks when the Paddle 3 side env is ready; True requires it.
    """
    json_file, params_file = Path(json_file).absolute(), Path(params_file).absolute()
    folder = cache_dir() / source_key(json_file, params_file)
    record_path = folder / PIR_SOURCE_RECORD
    if record_path.is_file() and (folder / PADDLE_MODEL_FILE).is_file():
        record = read_json(record_path, "PIR translation record")
        if shapes or (not record.get("equivalence", {}).get("checked") and _wants_check(check)):
            record["equivalence"] = _equivalence(json_file, params_file, folder, True, shapes)
            write_json(record_path, record)
        return folder
    from quantkit.pir.translate import translate

    with staged_folder(folder, replace=True) as staging:
        translation = translate(json_file, params_file, staging)
        record = {
            "format": "paddle3-pir-json",
            "source": {"model_file": str(json_file), "params_file": str(params_file),
                       "model_sha256": translation.source_sha256,
                       "params_sha256": file_sha256(params_file)},
            "translator": f"quantkit.pir (version {TRANSLATOR_VERSION})",
            "pir_ops": sum(translation.pir_op_counts.values()),
            "legacy_ops": sum(translation.legacy_op_counts.values()),
            "feeds": [{"name": name, "shape": list(shape), "dtype": dtype}
                      for name, shape, dtype in translation.feeds],
            "equivalence": _equivalence(json_file, params_file, staging, check, shapes),
        }
        write_json(staging / PIR_SOURCE_RECORD, record)
    return folder


def _wants_check(check: bool | None) -> bool:
    from quantkit import sideenv

    return check is True or (check is None and sideenv.ready("paddle3"))


def _equivalence(json_file: Path, params_file: Path, legacy_dir: Path, check: bool | None,
                 shapes: dict | None) -> dict:
    from quantkit.pir.equivalence import check_equivalence, default_shapes, feed_specs

    if check is False:
        return {"checked": False, "reason": "not checked: the check was turned off"}
    if not _wants_check(check):
        reason = (f"not checked: the paddle3 side environment is missing (run 'quantkit env "
                  f"install paddle3', then 'quantkit translate {json_file.parent} --check')")
        print(f"warning: {json_file}: translation {reason}", file=sys.stderr)
        return {"checked": False, "reason": reason}
    specs = feed_specs(json_file)
    chosen = {**default_shapes(specs, EQUIVALENCE_BATCH, EQUIVALENCE_DYNAMIC_DIM),
              **(shapes or {})}
    result = check_equivalence(json_file, params_file, legacy_dir, shapes=chosen)
    return {"checked": True, "max_abs_diff": result.max_abs_diff,
            "output_range": result.output_range, "tolerance": result.tolerance,
            "rule": "max |PIR - legacy| <= 1e-5 x output range + 1e-6, every output",
            "inputs": {name: list(shape) for name, shape in result.input_shapes},
            "runner": result.runner, "paddle": list(result.paddle_versions)}


def copy_record(source_dir: Path, destination: Path) -> dict | None:
    """Carry a PIR source record into a folder made from `source_dir` (calibrated models,
    artifacts), so provenance survives each stage; the record, or None."""
    path = Path(source_dir) / PIR_SOURCE_RECORD
    if not path.is_file():
        return None
    record = read_json(path, "PIR translation record")
    write_json(Path(destination) / PIR_SOURCE_RECORD, record)
    return record
