"""--lr-patience and --label-smoothing change training the way their help says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import random_head
from train_harness import config, contradictory_file, read_log, sentiment_file

from models.backbone import Backbone
from train.batches import Batch
from train.config import TrainConfig
from train.evaluate import head_logits
from train.features import IGNORE
from train.loop import train
from train.objective import batch_loss


def test_lr_patience_waits_before_halving(tmp_path: Path, tiny_roberta_dir: Path) -> None:
    data = contradictory_file(tmp_path / "both.jsonl")
    rates = {}
    for patience in (0, 2):
        cfg = config(
            tmp_path,
            tiny_roberta_dir,
            "sequence",
            data,
            out=str(tmp_path / f"p{patience}"),
            labels=["negative", "positive"],
            lr_patience=patience,
            epochs=5,
            slice_size=0,
        )
        train(cfg)
        rates[patience] = [float(r["lr"]) for r in read_log(cfg.out)]  # type: ignore[arg-type]
    lr = 1e-2
    assert rates[0] == [lr, lr / 2, lr / 4, lr / 8, lr / 16]
    assert rates[2] == [lr, lr, lr, lr / 2, lr / 2]


@pytest.mark.parametrize("kind", ["sequence", "token"])
def test_label_smoothing_mixes_the_uniform_target_into_the_loss(
    tiny_roberta: Backbone, kind: str
) -> None:
    """loss = (1 - eps) * CE(label) + eps * mean over labels of CE(label'), padding ignored."""
    torch.manual_seed(0)
    head = random_head(tiny_roberta.info, "toy", kind=kind)
    info = tiny_roberta.info
    windows, length = 3, 5
    mask = torch.ones(windows, length, dtype=torch.long)
    mask[2, 3:] = 0
    if kind == "sequence":
        labels = torch.tensor([1, 0])
    else:
        labels = torch.randint(0, len(head.labels), (windows, length))
        labels[mask == 0] = IGNORE
    batch = Batch(
        activated=torch.randn(windows, info.num_states, length, info.hidden_size),
        mask=mask,
        group=torch.tensor([0, 1, 1]),
        text_ids=torch.tensor([0, 1]),
        labels=labels,
    )
    eps = 0.3
    cfg = TrainConfig(task="toy", kind=kind, train=[], dev=[], out="", label_smoothing=eps)
    with torch.no_grad():
        got = batch_loss(head, batch, cfg)
        logp = torch.log_softmax(head_logits(head, batch).float(), dim=-1)
    logp, target = logp.reshape(-1, logp.shape[-1]), labels.flatten()
    keep = target != IGNORE
    logp, target = logp[keep], target[keep]
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    expected = ((1 - eps) * nll - eps * logp.mean(dim=1)).mean()
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    ("option", "message"),
    [({"label_smoothing": 1.0}, "--label-smoothing"), ({"lr_patience": -1}, "--lr-patience")],
)
def test_out_of_range_values_are_refused(
    tmp_path: Path, tiny_roberta_dir: Path, option: dict[str, float], message: str
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    with pytest.raises(ValueError, match=message):
        train(config(tmp_path, tiny_roberta_dir, "sequence", data, **option))
