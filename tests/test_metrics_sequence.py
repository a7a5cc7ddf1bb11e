"""Recognition metrics on hand-made CTC scores and strings with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from quantkit.errors import QuantkitError
from quantkit.metrics.sequence import (char_error_rate, ctc_greedy_decode, edit_distance,
                                       step_agreement)

CHARSET = ("blank", "a", "b", "c", " ")


def _scores(*rows: list[int]) -> np.ndarray:
    """One-hot-ish [N, T, C] scores whose argmax is each row's class sequence."""
    out = np.full((len(rows), len(rows[0]), len(CHARSET)), 0.01, np.float32)
    for n, steps in enumerate(rows):
        out[n, np.arange(len(steps)), steps] = 0.9
    return out


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    scores = _scores([1, 1, 0, 1, 2, 2, 0, 0, 3], [0] * 9, [4, 1, 4, 4, 2, 0, 0, 0, 0])
    assert ctc_greedy_decode(scores, CHARSET) == ["aabc", "", " a b"]
    with pytest.raises(QuantkitError, match="4 entries"):
        ctc_greedy_decode(scores, CHARSET[:4])
    with pytest.raises(QuantkitError, match=r"\[N, T, C\]"):
        ctc_greedy_decode(scores[0], CHARSET)


def test_edit_distance_and_character_error_rate():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == edit_distance("abc", "") == 3
    assert edit_distance("same", "same") == 0
    assert char_error_rate(["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 10)
    assert char_error_rate([" ab c "], ["abc"]) == pytest.approx(3 / 3)
    assert char_error_rate([" ab c "], ["a bc"], ignore_space=True) == 0.0
    assert char_error_rate([""], [""]) == 0.0  # nothing to read, nothing read
    assert char_error_rate(["ab"], [""]) == 2.0  # nothing to read, two characters made up
    with pytest.raises(QuantkitError, match="1 predicted strings for 2"):
        char_error_rate(["a"], ["a", "b"])


def test_step_agreement_counts_time_steps():
    a = _scores([1, 2, 3, 0], [1, 1, 1, 1])
    b = _scores([1, 2, 0, 0], [2, 1, 1, 1])
    assert step_agreement(a, b) == pytest.approx(6 / 8)
    assert step_agreement(a, a) == 1.0
    with pytest.raises(QuantkitError, match="shape"):
        step_agreement(a, b[:1])
