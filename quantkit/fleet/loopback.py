"""`ray start` for a node of a cluster that lives on 127.0.0.1 only (tests, `--address local`).

Ray swaps a loopback address for the machine's outward one ("so other machines can reach
it") and then listens there; a cluster that must stay on this machine needs the swap off.
This runs Ray's own CLI with the one function that finds "this machine's address" answering
127.0.0.1, so every server binds 127.0.0.1 (Ray's own rule for a loopback node IP).
"""
from __future__ import annotations

import sys

LOOPBACK = "127.0.0.1"


def keep_loopback() -> None:
    """From now on this process's Ray thinks this machine's address is 127.0.0.1."""
    import ray._private.services as services

    services.node_ip_address_from_perspective = lambda address=None: LOOPBACK


def main() -> int:
    keep_loopback()
    from ray.scripts.scripts import main as ray_main

    sys.argv[0] = "ray"
    return ray_main()


if __name__ == "__main__":
    sys.exit(main())
