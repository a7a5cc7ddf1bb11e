"""Rendered pages and lines: boxes inside the image and around the ink, text from the
allowed characters, the same pixels for the same seed."""
from __future__ import annotations

import numpy as np
import pytest

from quantkit.errors import QuantkitError
from quantkit.zoo import render
from quantkit.zoo.datasets import shipped_image


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return shipped_image("chelsea.png")


@pytest.mark.parametrize("size, background", [(640, False), (320, True)])
def test_pages_have_boxes_inside_the_image_and_text(size, background, photo):
    page = render.render_page(3, size, photo if background else None)
    assert page.image.shape == (size, size, 3) and page.image.dtype == np.uint8
    assert page.quads.dtype == np.float32 and page.quads.shape == (len(page.texts), 4, 2)
    assert render.PAGE_ITEMS[0] - 2 <= len(page.texts) <= render.PAGE_ITEMS[1]
    assert all(text.strip() for text in page.texts)
    assert page.quads.min() >= 0 and page.quads.max() <= size
    # Corners run clockwise from the text's top-left: the shoelace area is positive in
    # image coordinates (y down).
    x, y = page.quads[..., 0], page.quads[..., 1]
    area = 0.5 * np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)
    assert (area > 0).all()


def test_the_ink_lies_inside_the_boxes():
    from PIL import Image, ImageDraw

    page = render.render_page(11, 640)
    inside = Image.new("L", (640, 640), 0)
    for quad in page.quads:
        ImageDraw.Draw(inside).polygon([tuple(point) for point in quad.tolist()], fill=1)
    inside = np.asarray(inside).astype(bool)
    gray = page.image.astype(np.float64).mean(axis=2)
    ink = np.abs(gray - np.median(gray)) > 60  # far from the plain background
    assert ink.sum() > 1000
    assert ink[inside].sum() / ink.sum() > 0.97
    assert inside.mean() < 0.5  # the boxes do not cover the page


def test_rendering_is_deterministic_by_seed(photo):
    a, b = render.render_page(5, 320, photo), render.render_page(5, 320, photo)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.quads, b.quads)
    assert a.texts == b.texts
    assert not np.array_equal(a.image, render.render_page(6, 320, photo).image)
    line = render.render_line(9, photo)
    assert line.text == render.render_line(9, photo).text
    np.testing.assert_array_equal(line.image, render.render_line(9, photo).image)
    assert render.render_line(10).text != line.text or not np.array_equal(
        render.render_line(10).image, line.image)


def test_lines_hold_only_allowed_characters():
    allowed = frozenset("abcdefghijklmnopqrstuvwxyz0123456789 ")
    for seed in range(20):
        line = render.render_line(seed, allowed=allowed)
        assert line.text and line.text == line.text.strip()
        assert set(line.text) <= allowed
        height, width = line.image.shape[:2]
        assert line.image.shape[2] == 3 and 10 <= height <= 120
        assert width / height <= 1.5 * render.LINE_MAX_ASPECT


def test_missing_fonts_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(render, "FONT_DIR", tmp_path)
    with pytest.raises(QuantkitError, match="fonts-dejavu-core"):
        render.font_path("DejaVuSans.ttf")
