"""Per-target measurement: latency, throughput, memory, size and accuracy, here or remote.

`session.bench` runs each artifact through `runner.py` in its own process (or on a
remote host), `stats`/`accuracy` turn raw timings and outputs into `results` records,
and `report` renders them (table, JSON, CSV, Markdown, plots).
"""
