"""`quantkit translate` (a PIR model's legacy twin, checked) and `quantkit env` (side envs)."""
from __future__ import annotations

from pathlib import Path

import click

from quantkit.errors import QuantkitError, user_errors


def _shape(text: str) -> tuple[str, list[int]]:
    name, _, dims = text.partition("=")
    try:
        shape = [int(dim) for dim in dims.split(",")]
    except ValueError:
        shape = []
    if not name or not shape or any(dim < 1 for dim in shape):
        raise click.BadParameter(f"{text!r}: expected NAME=D0,D1,... with whole dims >= 1 "
                                 "(for example x=1,3,320,320)")
    return name, shape


@click.command("translate")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--model-filename", default=None, help="The *.json inside MODEL_DIR.")
@click.option("--params-filename", default=None, help="The *.pdiparams inside MODEL_DIR.")
@click.option("--check/--no-check", default=None,
              help="Run the PIR original (Paddle 3 side env) and the translation on one batch "
                   "and compare. Default: when the paddle3 side env is installed.")
@click.option("--shape", "shapes", multiple=True,
              help="NAME=D0,D1,... the equivalence batch for a feed (default: batch 2, other "
                   "dynamic dims 64). Repeatable.")
def translate_command(model_dir, model_filename, params_filename, check, shapes) -> None:
    """Translate a Paddle 3 PIR model (*.json) into a legacy program, once, and check it.

    Every quantkit command accepts a PIR model folder directly; this one shows what the
    translation is and where it is kept.
    """
    from quantkit.files import PIR_SOURCE_RECORD
    from quantkit.model_files import locate_model_files
    from quantkit.pir.cache import legacy_twin
    from quantkit.records import read_json

    with user_errors():
        parsed = dict(_shape(text) for text in shapes)
        model_file, params_file = locate_model_files(model_dir, model_filename,
                                                     params_filename)
        if not (model_file.parent / PIR_SOURCE_RECORD).is_file():
            raise QuantkitError(f"{model_file} is a legacy program already: nothing to "
                                "translate")
        if check or parsed:
            source = read_json(model_file.parent / PIR_SOURCE_RECORD, "PIR translation record")
            legacy_twin(Path(source["source"]["model_file"]),
                        Path(source["source"]["params_file"]), check=True, shapes=parsed)
        record = read_json(model_file.parent / PIR_SOURCE_RECORD, "PIR translation record")
    check_record = record["equivalence"]
    click.echo(f"translated: {model_file.parent} ({record['pir_ops']} PIR ops -> "
               f"{record['legacy_ops']} legacy ops)")
    if check_record.get("checked"):
        click.echo(f"equivalent: max |diff| {check_record['max_abs_diff']:.3g} <= "
                   f"{check_record['tolerance']:.3g} on inputs {check_record['inputs']} "
                   f"(Paddle {check_record['paddle'][0]} vs {check_record['paddle'][1]})")
    else:
        click.echo(check_record.get("reason", "not checked"))


@click.group("env")
def env_group() -> None:
    """Side environments (a second venv for a library the main env cannot hold)."""


@env_group.command("install")
@click.argument("name")
def env_install(name) -> None:
    """Create the side environment NAME (see 'quantkit env list')."""
    from quantkit import sideenv

    with user_errors():
        sideenv.install(name, progress=click.echo)


@env_group.command("list")
def env_list() -> None:
    """Every side environment: ready or not, where, what for."""
    from quantkit import sideenv

    for env in sideenv.describe():
        state = "ready" if env["ready"] else "missing"
        click.echo(f"{env['name']:<10} {state:<8} {env['path']}  ({', '.join(env['packages'])} "
                   f"on {env['python']}: {env['why']})")
