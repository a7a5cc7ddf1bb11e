"""`quantkit package` and `quantkit verify`: thin click commands over quantkit.packaging.

Registered in quantkit/cli.py with `main.add_command(package_command)` and
`main.add_command(verify_command)`. Exit codes: 0 ok, 1 the smoke run failed (the report
says by how much), 2 a refusal (one line: the file or argument at fault and what to do).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from quantkit.cli_types import output_options
from quantkit.errors import user_errors


@click.command("package")
@click.argument("source", type=click.Path(path_type=Path))
@output_options("Target to package from a run folder (needed when it holds several).",
                "Folder for the bundle folder <target>/ and <target>.tar.gz.",
                "Replace an existing bundle of that target.")
def package_command(source: Path, target: str | None, out_dir: Path, force: bool) -> None:
    """Package SOURCE (a 'quantkit run' folder or an artifact folder) as a release bundle."""
    from quantkit.packaging import package

    with user_errors():
        folder = package(source, out_dir, target=target, force=force)
    click.echo(f"bundle: {folder}")
    click.echo(f"archive: {folder.with_name(folder.name + '.tar.gz')}")
    click.echo(f"check it with: quantkit verify {folder}")


@click.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--no-smoke", is_flag=True,
              help="Check checksums only; do not run the model on the smoke input.")
def verify_command(bundle: Path, no_smoke: bool) -> None:
    """Check BUNDLE (folder or .tar.gz): every checksum, then a smoke run where possible."""
    from quantkit.packaging import verify

    with user_errors():
        report = verify(bundle, smoke=not no_smoke)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)

