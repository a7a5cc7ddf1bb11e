"""Remote hosts for benchmarks: one frozen value per board, phone or server, read from TOML.

A hosts file holds `[hosts.NAME]` tables (see hosts.example.toml at the repo root). It is
kept apart from target profiles because the same artifact runs on many machines, and a
machine's address, key and interpreter are facts about the lab, not about the model.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from quantkit.errors import QuantkitError
from quantkit.names import check_name
from quantkit.suggest import did_you_mean, refuse_unknown_keys

KINDS = ("ssh", "adb")
OPENERS = ("auto", "paddle-lite", "quantkit")
# Paddle Lite's benchmark_bin changed its flags in v2.10 (lite/api/tools/benchmark):
# --optimized_model_file and a required --backend; v2.0-2.9 (lite/api/benchmark.cc) took
# --optimized_model_path and wrote a one-line result.
BENCHMARK_BIN_STYLES = ("v2.10", "legacy")
DEFAULT_WORKDIR = {"ssh": "/tmp/quantkit-bench", "adb": "/data/local/tmp/quantkit"}
DEFAULT_PYTHON = {"ssh": "python3", "adb": ""}  # Android ships no Python
HOSTS_FILE_NAME = "hosts.toml"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # exported by a remote shell


def default_hosts_files() -> tuple[Path, ...]:
    """Where `find_host` looks when no file is given, first match wins."""
    return (Path.cwd() / HOSTS_FILE_NAME,
            Path.home() / ".config" / "quantkit" / HOSTS_FILE_NAME)


@dataclass(frozen=True)
class HostProfile:
    """How to reach one machine and run a benchmark job there.

    ssh hosts need `address`; adb hosts need `serial` and either `benchmark_bin`
    (Paddle Lite's benchmark tool already on the device; it wins when both are set) or
    `python` (an interpreter `adb shell` can execute; Termux is reached over ssh instead).
    """

    name: str
    kind: str
    description: str = ""
    address: str = ""
    port: int = 22
    user: str = ""  # empty: ssh's own default (your ~/.ssh/config or login name)
    key: Path | None = None  # private key for `ssh -i`
    known_hosts: Path | None = None  # empty: ssh's default ~/.ssh/known_hosts
    python: str = ""  # remote interpreter; empty: python3 (ssh), none (adb)
    workdir: str = ""  # remote scratch folder; empty: the kind's default
    opener: str = "auto"
    benchmark_bin: str = ""  # adb: path of benchmark_bin on the device
    benchmark_bin_style: str = "v2.10"
    benchmark_backend: str = "arm"  # benchmark_bin --backend (v2.10 style)
    serial: str = ""  # adb: the device's serial, as `adb devices` lists it
    connect_timeout_s: float = 10.0
    ssh_options: tuple[str, ...] = ()  # extra `-o` values, e.g. "ProxyJump=gateway"
    scp_legacy: bool = False  # scp -O: for servers without SFTP (dropbear)
    env: Mapping[str, str] = field(default_factory=dict)  # exported before the runner
    source: str = ""  # the hosts file, for messages

    def __post_init__(self) -> None:
        where = f"host '{self.name}'" + (f" in {self.source}" if self.source else "")
        if self.kind not in KINDS:
            raise QuantkitError(f"bad value for 'kind' of {where}: {self.kind!r} "
                                f"(choose one of {', '.join(KINDS)})")
        if self.opener not in OPENERS:
            raise QuantkitError(f"bad value for 'opener' of {where}: {self.opener!r} "
                                f"(choose one of {', '.join(OPENERS)})")
        if self.benchmark_bin_style not in BENCHMARK_BIN_STYLES:
            raise QuantkitError(f"bad value for 'benchmark_bin_style' of {where}: "
                                f"{self.benchmark_bin_style!r} (choose one of "
                                f"{', '.join(BENCHMARK_BIN_STYLES)})")
        if isinstance(self.port, bool) or not isinstance(self.port, int) \
                or not 1 <= self.port <= 65535:
            raise QuantkitError(f"bad value for 'port' of {where}: {self.port!r} "
                                "(an integer 1-65535)")
        if isinstance(self.connect_timeout_s, bool) \
                or not isinstance(self.connect_timeout_s, (int, float)) \
                or self.connect_timeout_s <= 0:
            raise QuantkitError(f"bad value for 'connect_timeout_s' of {where}: "
                                f"{self.connect_timeout_s!r} (seconds, > 0)")
        if self.kind == "ssh" and not self.address:
            raise QuantkitError(f"{where} has kind 'ssh' but no 'address' (its host name "
                                "or IP)")
        if self.kind == "ssh" and self.benchmark_bin:
            raise QuantkitError(f"{where}: 'benchmark_bin' is for adb hosts; an ssh host runs "
                                "quantkit's runner with its 'python' (remove benchmark_bin)")
        if self.kind == "adb":
            if not self.serial:
                raise QuantkitError(f"{where} has kind 'adb' but no 'serial' (run "
                                    "`adb devices` and copy the device's serial)")
            if not self.benchmark_bin and not self.python:
                raise QuantkitError(f"{where} (adb) needs 'benchmark_bin' (path of Paddle "
                                    "Lite's benchmark_bin on the device) or 'python' (an "
                                    "interpreter adb shell can run on the device)")
        bad_names = [name for name in self.env if not _ENV_NAME.fullmatch(str(name))]
        if bad_names:
            raise QuantkitError(f"bad value for 'env' of {where}: {bad_names[0]!r} is not an "
                                "environment variable name (letters, digits, _)")
        if not self.python:
            object.__setattr__(self, "python", DEFAULT_PYTHON[self.kind])
        if not self.workdir:
            object.__setattr__(self, "workdir", DEFAULT_WORKDIR[self.kind])

    @property
    def where(self) -> str:
        """`user@address:port` (or `adb:SERIAL`): what messages name."""
        if self.kind == "adb":
            return f"adb:{self.serial}"
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.address}:{self.port}"

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record.pop("source")
        for name in ("key", "known_hosts"):
            record[name] = str(record[name]) if record[name] is not None else None
        record["ssh_options"] = list(self.ssh_options)
        record["env"] = dict(self.env)
        return record


_FIELDS = {f.name for f in dataclasses.fields(HostProfile)} - {"name", "source"}
_STRINGS = ("kind", "description", "address", "user", "python", "workdir", "opener",
            "benchmark_bin", "benchmark_bin_style", "benchmark_backend", "serial")


def host_from_dict(name: str, data: Mapping[str, Any], source: str = "",
                   base_dir: Path | None = None) -> HostProfile:
    """Validate one `[hosts.NAME]` table; relative key paths are relative to `base_dir`."""
    check_name(name, "host name", source or "the hosts file")
    where = f"host '{name}'" + (f" in {source}" if source else "")
    if not isinstance(data, Mapping):
        raise QuantkitError(f"{where} must be a table ([hosts.{name}]), not "
                            f"{type(data).__name__}")
    refuse_unknown_keys(data, _FIELDS, "key", f" for {where}")
    if "kind" not in data:
        raise QuantkitError(f"{where} has no 'kind' (one of {', '.join(KINDS)})")
    values = dict(data)
    for key in _STRINGS:
        if key in values and not isinstance(values[key], str):
            raise QuantkitError(f"bad value for '{key}' of {where}: {values[key]!r} "
                                "(a string)")
    if "scp_legacy" in values and not isinstance(values["scp_legacy"], bool):
        raise QuantkitError(f"bad value for 'scp_legacy' of {where}: "
                            f"{values['scp_legacy']!r} (true or false)")
    options = values.get("ssh_options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) and "=" in o
                                                for o in options):
        raise QuantkitError(f"bad value for 'ssh_options' of {where}: {options!r} (a list "
                            "of ssh -o values like \"ServerAliveInterval=15\")")
    values["ssh_options"] = tuple(options)
    env = values.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
        raise QuantkitError(f"bad value for 'env' of {where}: {env!r} (a table of "
                            "NAME = \"value\" strings)")
    values["env"] = dict(env)
    for key in ("key", "known_hosts"):
        if key in values:
            if not isinstance(values[key], str) or not values[key]:
                raise QuantkitError(f"bad value for '{key}' of {where}: {values[key]!r} "
                                    "(a file path)")
            path = Path(values[key]).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            values[key] = path
    return HostProfile(name=name, source=source, **values)


def load_hosts(path: str | Path) -> dict[str, HostProfile]:
    """Every host in a hosts file, by name."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise QuantkitError(f"hosts file not found: {path} (start from hosts.example.toml "
                            "in the quantkit repository)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise QuantkitError(f"hosts file {path} is not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"hosts"})
    if extra:
        raise QuantkitError(f"unknown top-level key '{extra[0]}' in {path}: hosts go in "
                            "[hosts.NAME] tables")
    tables = data.get("hosts", {})
    return {name: host_from_dict(name, table, source=str(path), base_dir=path.parent)
            for name, table in tables.items()}


def find_host(name: str, hosts_file: str | Path | None = None) -> HostProfile:
    """The host called `name`, from `hosts_file` or the first default hosts file found."""
    if hosts_file is None:
        candidates = default_hosts_files()
        hosts_file = next((p for p in candidates if p.is_file()), None)
        if hosts_file is None:
            raise QuantkitError(f"no hosts file for host '{name}': looked for "
                                f"{' and '.join(str(p) for p in candidates)} (copy "
                                "hosts.example.toml to one of them, or pass --hosts FILE)")
    hosts = load_hosts(hosts_file)
    if name not in hosts:
        known = ", ".join(sorted(hosts)) or "none"
        raise QuantkitError(f"unknown host '{name}' in {hosts_file}"
                            f"{did_you_mean(name, hosts)}; known hosts: {known}")
    return hosts[name]
