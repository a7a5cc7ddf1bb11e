"""quantkit fleet: a zoo of models measured across a Ray cluster, one node per device.

`driver.run_fleet` is the entry point; `cluster` starts throwaway clusters on 127.0.0.1,
`node` joins one, `connect` reaches it, `versions` refuses mismatched nodes, `tasks` is
what runs on a node, `schedule` places, retries and cancels, `summary` answers per model.
"""
from __future__ import annotations


def run_fleet(*args, **kwargs):
    """See quantkit.fleet.driver.run_fleet (imported lazily: Ray loads on first use)."""
    from quantkit.fleet.driver import run_fleet as run

    return run(*args, **kwargs)
