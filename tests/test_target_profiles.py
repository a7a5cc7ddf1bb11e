"""Target profiles load into one frozen dataclass; typos and bad values are named."""
from __future__ import annotations

import dataclasses

import pytest

from quantkit.errors import QuantkitError
from quantkit.targets.profile import load_profile, shipped_profiles

REQUIRED_TARGETS = {"arm-lite-int8", "intel-onednn-int8", "nvidia-trt-int8", "onnxruntime-int8",
                    "arm-lite-fp32", "intel-onednn-fp32", "intel-cpu-fp32", "nvidia-trt-fp32",
                    "onnxruntime-fp32"}


def test_every_required_profile_ships_and_loads():
    profiles = {p.name: p for p in shipped_profiles()}
    assert REQUIRED_TARGETS <= set(profiles)
    for name, profile in profiles.items():
        assert profile.source.endswith(f"{name}.toml"), "file name and profile name differ"
    assert profiles["intel-onednn-int8"].precision == "int8"
    assert profiles["nvidia-trt-int8"].dynamic_shapes["image"].max == (64, 1, 28, 28)


def test_profile_is_frozen_and_printable():
    profile = load_profile("intel-onednn-int8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.threads = 8
    assert "intel-onednn-int8" in repr(profile)
    assert profile.to_dict()["backend"] == "paddle-inference"


def test_typo_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nbackend = "paddle-inference"\nprecision = "int8"\n'
                    'thread = 4\n')
    with pytest.raises(QuantkitError, match=r"unknown key 'thread' in .*mine\.toml "
                                            r"\(did you mean 'threads'\?\)"):
        load_profile(path)


@pytest.mark.parametrize("line, key", [
    ('backend = "cuda"', "backend"), ('precision = "int4"', "precision"),
    ("threads = 0", "threads"), ("batch_sizes = [0]", "batch_sizes")])
def test_bad_values_are_named(tmp_path, line, key):
    base = {"name": 'name = "mine"', "backend": 'backend = "paddle-inference"',
            "precision": 'precision = "fp32"'}
    base[key] = line
    path = tmp_path / "mine.toml"
    path.write_text("\n".join(base.values()) + "\n")
    expected = f"unknown {key} " if key in ("backend", "precision") else f"bad value for '{key}'"
    with pytest.raises(QuantkitError, match=expected):
        load_profile(path)


def test_unknown_target_lists_close_names():
    with pytest.raises(QuantkitError, match=r"unknown target 'intel-onednn-in8' "
                                            r"\(did you mean 'intel-onednn-int8'\?\)"):
        load_profile("intel-onednn-in8")


def test_unknown_backend_option_is_named():
    from quantkit.targets.paddle_inference import recipe_from_profile

    profile = dataclasses.replace(load_profile("intel-onednn-int8"),
                                  options={"onednn": True, "int8_opps": []})
    with pytest.raises(QuantkitError, match="unknown option 'options.int8_opps'"):
        recipe_from_profile(profile)
