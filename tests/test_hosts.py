"""Hosts files: the shipped example parses, defaults depend on the kind, paths resolve
beside the file, and every bad field or unknown host is refused with its name."""
from __future__ import annotations

from pathlib import Path

import pytest

from quantkit.benchmark.remote.hosts import (HostProfile, default_hosts_files, find_host,
                                      host_from_dict, load_hosts)
from quantkit.errors import QuantkitError

EXAMPLE = Path(__file__).resolve().parents[1] / "hosts.example.toml"


def _write(folder: Path, text: str, name: str = "hosts.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_example_hosts_file_documents_an_arm_board_a_phone_and_a_gpu_server():
    hosts = load_hosts(EXAMPLE)
    assert sorted(hosts) == ["gpu-server", "pixel7", "rpi5"]
    board, phone, server = hosts["rpi5"], hosts["pixel7"], hosts["gpu-server"]
    assert (board.kind, board.user, board.port, board.opener) == ("ssh", "pi", 22, "paddle-lite")
    assert board.key == Path.home() / ".ssh" / "id_ed25519_boards"
    assert board.python == "~/qk/bin/python"
    assert board.ssh_options == ("ServerAliveInterval=30",)
    assert (phone.kind, phone.serial, phone.benchmark_bin) == (
        "adb", "28031FDH2000XY", "/data/local/tmp/benchmark_bin")
    assert phone.where == "adb:28031FDH2000XY"
    assert server.env == {"CUDA_VISIBLE_DEVICES": "0"}
    assert server.key == EXAMPLE.parent / "keys" / "bench_ed25519"  # beside the file
    # every field of HostProfile is documented in the example's header
    header = EXAMPLE.read_text().split("\n[hosts.")[0]
    documented = {field for field in HostProfile.__dataclass_fields__
                  if f"#   {field} " in header}
    assert documented == set(HostProfile.__dataclass_fields__) - {"name", "source"}


def test_defaults_depend_on_the_kind(tmp_path):
    hosts = load_hosts(_write(tmp_path, """
[hosts.board]
kind = "ssh"
address = "10.1.2.3"

[hosts.phone]
kind = "adb"
serial = "emulator-5554"
python = "/data/data/com.termux/files/usr/bin/python"
"""))
    board, phone = hosts["board"], hosts["phone"]
    assert (board.python, board.workdir, board.port, board.opener) == (
        "python3", "/tmp/quantkit-bench", 22, "auto")
    assert (board.key, board.known_hosts, board.connect_timeout_s) == (None, None, 10.0)
    assert board.where == "10.1.2.3:22"
    assert phone.workdir == "/data/local/tmp/quantkit"
    assert phone.benchmark_bin == "" and phone.python.endswith("/usr/bin/python")
    assert board.source == str(tmp_path / "hosts.toml")


@pytest.mark.parametrize("table, message", [
    ('kind = "ssh"\naddress = "a"\nprot = 22', "unknown key 'prot' for host 'x'"),
    ('kind = "ssh"\naddress = "a"\nprot = 22', "did you mean 'port'?"),
    ('kind = "telnet"\naddress = "a"', "bad value for 'kind' of host 'x'"),
    ('address = "a"', "host 'x' in {file} has no 'kind'"),
    ('kind = "ssh"', "has kind 'ssh' but no 'address'"),
    ('kind = "ssh"\naddress = "a"\nport = 70000', "bad value for 'port'"),
    ('kind = "ssh"\naddress = "a"\nport = "22"', "bad value for 'port'"),
    ('kind = "ssh"\naddress = "a"\nconnect_timeout_s = 0', "bad value for 'connect_timeout_s'"),
    ('kind = "ssh"\naddress = "a"\nopener = "lite"', "bad value for 'opener'"),
    ('kind = "ssh"\naddress = "a"\nssh_options = "BatchMode=no"', "bad value for 'ssh_options'"),
    ('kind = "ssh"\naddress = "a"\nenv = { A = 1 }', "bad value for 'env'"),
    ('kind = "ssh"\naddress = "a"\nenv = { "A B" = "1" }', "bad value for 'env'"),
    ('kind = "ssh"\naddress = "a"\nuser = 7', "bad value for 'user'"),
    ('kind = "ssh"\naddress = "a"\nbenchmark_bin = "/b"', "'benchmark_bin' is for adb hosts"),
    ('kind = "adb"', "has kind 'adb' but no 'serial'"),
    ('kind = "adb"\nserial = "S1"', "needs 'benchmark_bin'"),
    ('kind = "adb"\nserial = "S1"\nbenchmark_bin = "/b"\nbenchmark_bin_style = "2.9"',
     "bad value for 'benchmark_bin_style'"),
])
def test_bad_fields_are_refused_naming_host_field_and_file(tmp_path, table, message):
    path = _write(tmp_path, f"[hosts.x]\n{table}\n")
    with pytest.raises(QuantkitError) as error:
        load_hosts(path)
    assert message.format(file=path) in str(error.value)
    assert str(path) in str(error.value)


def test_file_level_errors_name_the_file(tmp_path):
    with pytest.raises(QuantkitError, match="hosts file not found: .*nope.toml"):
        load_hosts(tmp_path / "nope.toml")
    broken = _write(tmp_path, "[hosts.x\nkind = 'ssh'\n", "broken.toml")
    with pytest.raises(QuantkitError, match=f"hosts file {broken} is not valid TOML"):
        load_hosts(broken)
    flat = _write(tmp_path, "[board]\nkind = 'ssh'\n", "flat.toml")
    with pytest.raises(QuantkitError, match=r"unknown top-level key 'board'.*\[hosts.NAME\]"):
        load_hosts(flat)


def test_find_host_names_the_known_hosts_when_the_name_is_unknown(tmp_path):
    path = _write(tmp_path, '[hosts.rpi4]\nkind = "ssh"\naddress = "a"\n'
                            '[hosts.jetson]\nkind = "ssh"\naddress = "b"\n')
    assert find_host("jetson", path).address == "b"
    with pytest.raises(QuantkitError) as error:
        find_host("rpi5", path)
    text = str(error.value)
    assert "unknown host 'rpi5'" in text and "did you mean 'rpi4'?" in text
    assert "known hosts: jetson, rpi4" in text and str(path) in text


def test_find_host_searches_the_working_folder_then_the_user_config(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".config" / "quantkit").mkdir(parents=True)
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert default_hosts_files() == (work / "hosts.toml",
                                     home / ".config" / "quantkit" / "hosts.toml")
    with pytest.raises(QuantkitError, match="no hosts file for host 'b1': looked for"):
        find_host("b1")
    _write(home / ".config" / "quantkit", '[hosts.b1]\nkind = "ssh"\naddress = "user-cfg"\n')
    assert find_host("b1").address == "user-cfg"
    _write(work, '[hosts.b1]\nkind = "ssh"\naddress = "local"\nkey = "k/id"\n')
    found = find_host("b1")
    assert found.address == "local"  # ./hosts.toml wins
    assert found.key == work / "k" / "id"


def test_host_values_print_and_serialise():
    host = host_from_dict("b", {"kind": "ssh", "address": "::1", "user": "me",
                                "key": "/k/id", "env": {"OMP_PROC_BIND": "true"}})
    assert host.where == "me@::1:22"
    record = host.to_dict()
    assert record["key"] == "/k/id" and record["env"] == {"OMP_PROC_BIND": "true"}
    assert "source" not in record and record["name"] == "b"
