"""Temperature scaling: the fitted T undoes known over-confidence, leaves every prediction
as it was, travels in the manifest, and the head's answers use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_head

from heads.io import load_head, save_head
from heads.postprocess import classification_answer
from models.backbone import Backbone
from train.calibration import calibration_report, ece, fit_temperature, reliability


def sampled(temperature: float, n: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z / temperature): the true T is known."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(n, 3, generator=gen) * 4
    y = torch.multinomial(torch.softmax(z / temperature, -1), 1, generator=gen).squeeze(1)
    return z, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_true_one(true_t: float) -> None:
    z, y = sampled(true_t)
    assert fit_temperature(z, y) == pytest.approx(true_t, rel=0.06)


def test_scaling_lowers_the_calibration_error_of_an_overconfident_model() -> None:
    z, y = sampled(3.0)
    t = fit_temperature(z, y)
    report = calibration_report(z, y.tolist(), t)
    assert report["ece"] < 0.02 < 0.1 < report["ece_raw"]
    # argmax, hence accuracy, is unchanged
    assert torch.equal((z / t).argmax(-1), z.argmax(-1))


def test_ece_and_reliability_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    labels = [0, 1, 1, 1]
    bins = reliability(probs, labels, bins=10)
    assert [b["count"] for b in bins] == [1, 1, 1, 1]
    # bins: 0.6 right, 0.7 right, 0.8 wrong, 0.9 right
    assert ece(probs, labels, bins=10) == pytest.approx((0.4 + 0.3 + 0.8 + 0.1) / 4)


def test_temperature_travels_in_the_manifest_and_divides_the_logits(
    tmp_path: Path, tiny_roberta: Backbone
) -> None:
    head = random_head(tiny_roberta.info, "toy")
    sums, counts = torch.randn(4, head.manifest.k), torch.full((4, 1), 3.0)
    with torch.no_grad():
        before = head.head.classify(sums, counts)
        head.set_temperature(2.0)
        assert torch.allclose(head.head.classify(sums, counts), before / 2)
    folder = save_head(head, tmp_path / "head")
    again = load_head(folder)
    assert again.manifest.temperature == 2.0
    with torch.no_grad():
        probs = torch.softmax(again.head.classify(sums, counts), -1)
    answer = classification_answer(probs[0], again.labels)
    assert answer.score == pytest.approx(float(torch.softmax(before[0] / 2, -1).max()))
