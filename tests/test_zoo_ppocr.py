"""PP-OCR's pre-processing and settings: read from rapidocr's config.yaml, and equal to what
rapidocr's own classes compute (used as the oracle, without their predictors)."""
from __future__ import annotations

from types import SimpleNamespace

import quantkit  # noqa: F401  - zlib before paddle (rapidocr's modules import it)
import cv2  # noqa: F401  - before paddle
import numpy as np
import pytest
import yaml

from quantkit.errors import QuantkitError
from quantkit.zoo import ppocr


@pytest.fixture(scope="module")
def shipped_config() -> dict:
    return yaml.safe_load((ppocr.rapidocr_dir() / "config.yaml").read_text())


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_settings_are_the_wheels(shipped_config):
    det, rec, cls = shipped_config["Det"], shipped_config["Rec"], shipped_config["Cls"]
    settings = ppocr.det_settings()
    assert (settings.db.thresh, settings.db.box_thresh, settings.db.unclip_ratio,
            settings.db.max_candidates, settings.db.use_dilation, settings.db.score_mode) == (
        det["thresh"], det["box_thresh"], det["unclip_ratio"], det["max_candidates"],
        det["use_dilation"], det["score_mode"])
    assert list(settings.mean) == det["mean"] == [0.5] * 3 and list(settings.std) == det["std"]
    assert ppocr.db_settings() is settings.db
    assert list(ppocr.rec_settings().image_shape) == rec["rec_img_shape"] == [3, 48, 320]
    assert list(ppocr.cls_settings().image_shape) == cls["cls_image_shape"] == [3, 48, 192]
    assert ppocr.cls_settings().labels == ("0", "180")


def test_charset_is_ctc_label_decodes():
    from rapidocr_paddle.ch_ppocr_rec.utils import CTCLabelDecode

    charset = ppocr.charset()
    expected = CTCLabelDecode(character_path=ppocr.rapidocr_dir() / ppocr.REC_DICTIONARY)
    assert list(charset) == expected.character
    assert len(charset) == 6625  # the recogniser's output classes
    assert charset[0] == ppocr.BLANK and charset[-1] == " "
    assert set("Hello, World! 0123456789$%-:.") <= set(charset)


@pytest.mark.parametrize("shape", [(300, 451), (512, 512), (50, 120), (1000, 300)])
def test_det_preprocess_is_rapidocrs(shape):
    from rapidocr_paddle.ch_ppocr_det.utils import DetPreProcess

    settings = ppocr.det_settings()
    image = _image(*shape)
    expected = DetPreProcess(settings.limit_side_len, settings.limit_type, list(settings.mean),
                             list(settings.std))(image)[0]
    got, (scale_y, scale_x) = ppocr.det_preprocess(image)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert got.shape[1] % 32 == 0 and got.shape[2] % 32 == 0
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert (scale_y, scale_x) == (got.shape[1] / shape[0], got.shape[2] / shape[1])


def test_det_preprocess_fixed_size_keeps_the_aspect():
    image = _image(191, 384)
    got, (scale_y, scale_x) = ppocr.det_preprocess(image, size=640)
    assert got.shape == (3, 640, 640) and scale_x == 640 / 384
    assert scale_y == pytest.approx(scale_x, rel=0.01)
    assert np.all(got[:, 320:] == -1.0)  # black letterbox, normalised: (0 - 0.5) / 0.5
    with pytest.raises(QuantkitError, match="multiple of 32"):
        ppocr.det_preprocess(image, size=100)


@pytest.mark.parametrize("shape", [(32, 100), (40, 600), (64, 64)])
def test_rec_and_cls_preprocess_are_rapidocrs(shape):
    from rapidocr_paddle.ch_ppocr_cls.text_cls import TextClassifier
    from rapidocr_paddle.ch_ppocr_rec.text_recognize import TextRecognizer

    line = _image(*shape, seed=1)
    rec = SimpleNamespace(rec_image_shape=list(ppocr.rec_settings().image_shape))
    np.testing.assert_array_equal(ppocr.rec_preprocess(line),
                                  TextRecognizer.resize_norm_img(rec, line, 320 / 48))
    wide = TextRecognizer.resize_norm_img(rec, line, 900 / 48)
    np.testing.assert_array_equal(ppocr.rec_preprocess(line, 900 / 48), wide)
    cls = SimpleNamespace(cls_image_shape=list(ppocr.cls_settings().image_shape))
    np.testing.assert_array_equal(ppocr.cls_preprocess(line),
                                  TextClassifier.resize_norm_img(cls, line))
    assert ppocr.cls_preprocess(line).shape == (3, 48, 192)


def test_to_bgr():
    rgb = _image(4, 5)
    np.testing.assert_array_equal(ppocr.to_bgr(rgb), rgb[:, :, ::-1])
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(ppocr.to_bgr(rgba), rgb[:, :, ::-1])
    assert ppocr.to_bgr(rgb[:, :, 0]).shape == (4, 5, 3)
    with pytest.raises(QuantkitError, match="HxW"):
        ppocr.to_bgr(np.zeros((2, 2, 2), np.uint8))
