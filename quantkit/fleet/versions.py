"""Every node runs the driver's Python (major.minor.patch), quantkit and Ray, or none runs.

Ray pickles task code by reference and the node's runner opens artifacts with its own
quantkit, so a node on another version would measure something else or fail oddly
mid-run; refusing up front, naming the node and what to install, is cheaper.
"""
from __future__ import annotations

from typing import Sequence

from quantkit.errors import QuantkitError

COMPARED = (("python", "Python"), ("quantkit", "quantkit"), ("ray", "ray"))


def driver_versions() -> dict:
    """This process's versions: what every node must match."""
    from quantkit.fleet.tasks import node_versions

    return node_versions()


def check_versions(driver: dict, nodes: Sequence) -> None:
    """Refuse when a node's Python, quantkit or Ray differs from the driver's."""
    problems = []
    for node in nodes:
        differ = [(label, node.versions.get(key), driver.get(key)) for key, label in COMPARED
                  if node.versions.get(key) != driver.get(key)]
        if differ:
            has = ", ".join(f"{label} {found}" for label, found, _ in differ)
            wants = " and ".join(f"{label} {wanted}" for label, _, wanted in differ)
            problems.append(f"node {node.name} runs {has}: install {wants} there (the "
                            "driver's), then restart its `quantkit fleet node`")
    if problems:
        raise QuantkitError("version mismatch: " + "; ".join(problems)
                            + " (deploy/fleet.md, version rules)")
