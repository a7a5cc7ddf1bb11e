"""Outputs appear whole or not at all."""
from __future__ import annotations

import pytest

from quantkit.atomic import staged_folder


def test_failure_leaves_nothing_not_even_new_parents(tmp_path):
    destination = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError):
        with staged_folder(destination) as staging:
            (staging / "model.pdmodel").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_success_renames_into_place(tmp_path):
    destination = tmp_path / "out"
    with staged_folder(destination) as staging:
        (staging / "model.pdmodel").write_text("whole")
    assert (destination / "model.pdmodel").read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


def test_existing_folder_gets_files_replaced_and_keeps_others(tmp_path):
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "model.pdmodel").write_text("old")
    (destination / "notes.txt").write_text("mine")
    with staged_folder(destination) as staging:
        (staging / "model.pdmodel").write_text("new")
    assert (destination / "model.pdmodel").read_text() == "new"
    assert (destination / "notes.txt").read_text() == "mine"
