"""--class-weights: balanced weights follow scikit-learn's rule; bad specs fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from train.class_weights import class_weights, label_counts
from train.data import TextExample, TokenExample

LABELS = ["unacceptable", "acceptable"]
TEXTS = [TextExample(f"s{i}", "1" if i % 4 else "0") for i in range(12)]  # 3 x 0, 9 x 1


def test_balanced_matches_scikit_learn() -> None:
    y = np.array([int(e.label) for e in TEXTS])
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    got = class_weights(["balanced"], TEXTS, LABELS)
    assert got is not None
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert got[0] > got[1]  # the minority class weighs more


def test_token_examples_count_words_and_absent_labels_get_zero() -> None:
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    examples = [TokenExample(("Ann", "Lee", "ran"), ("B-PER", "I-PER", "O"))]
    np.testing.assert_array_equal(label_counts(examples, labels), [1, 1, 1, 0, 0])
    got = class_weights(["balanced"], examples, labels)
    assert got is not None
    np.testing.assert_allclose(got.numpy(), [1.0, 1.0, 1.0, 0.0, 0.0])


def test_explicit_weights_and_unweighted_default() -> None:
    got = class_weights(["2", "0.5"], TEXTS, LABELS)
    assert got is not None and got.tolist() == [2.0, 0.5]
    assert class_weights(None, TEXTS, LABELS) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["1"], "one weight per label"),
        (["1", "2", "3"], "one weight per label"),
        (["heavy", "1"], "'balanced' or one number per label"),
        (["-1", "1"], "positive"),
        (["0", "1"], "positive"),
    ],
)
def test_bad_specs_are_refused_with_a_message(spec: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        class_weights(spec, TEXTS, LABELS)
