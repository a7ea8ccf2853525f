import re

import numpy as np
import pytest

from fetal_keras.data.labels import brain_mask_from_labels, label_value_problem, parse_label_values

IFIND_LABELS = np.array([[0, 2, 9], [10, 2, 0]], dtype=np.uint8)


def test_default_any_non_zero_is_brain():
    np.testing.assert_array_equal(brain_mask_from_labels(IFIND_LABELS), [[0, 1, 1], [1, 1, 0]])


def test_chosen_label_values_are_brain():
    np.testing.assert_array_equal(brain_mask_from_labels(IFIND_LABELS, (2,)), [[0, 1, 0], [0, 1, 0]])
    assert brain_mask_from_labels(IFIND_LABELS, (2,)).dtype == np.uint8


@pytest.mark.parametrize(("text", "expected"), [("2", (2,)), ("0, 2,9,10", (0, 2, 9, 10)), ("", None), (None, None)])
def test_parse_label_values(text, expected):
    assert parse_label_values(text) == expected


@pytest.mark.parametrize("text", ["brain", "2,-1", "2.5"])
def test_parse_label_values_rejects_non_integers(text):
    with pytest.raises(ValueError, match="not a non-negative integer"):
        parse_label_values(text)


@pytest.mark.parametrize(
    ("segmentation", "allowed", "message"),
    [
        (np.array([0.0, 0.5, 1.0]), None, "non-integer"),
        (np.array([0, -1, 1]), None, "negative"),
        (np.array([0.0, np.nan]), None, "NaN"),
        (IFIND_LABELS, (0, 2), r"\[9, 10\] outside the allowed set \[0, 2\]"),
    ],
)
def test_label_value_problems(segmentation, allowed, message):
    assert label_value_problem(segmentation, allowed) is not None
    assert re.search(message, label_value_problem(segmentation, allowed))


def test_valid_label_maps_have_no_problem():
    assert label_value_problem(IFIND_LABELS) is None
    assert label_value_problem(IFIND_LABELS, (0, 2, 9, 10)) is None
    assert label_value_problem(np.array([0.0, 1.0, 2.0])) is None
