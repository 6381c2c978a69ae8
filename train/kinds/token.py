"""Training a token head: single windows, per-token cross-entropy, seqeval entity F1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from heads.postprocess import TokenTable, token_entities_many
from heads.task_head import TaskHead
from models.windows import encode_texts, make_windows
from train.batches import load_batch, plan
from train.data import Example, TokenExample, token_labels
from train.features import IGNORE, CachedSplit, with_case_ids
from train.kinds.base import CacheView, TrainKind
from train.metrics import entities_to_tags, ner_metrics

if TYPE_CHECKING:
    from train.batches import Batch


class TokenTraining(TrainKind):
    name: ClassVar[str] = "token"
    by_text: ClassVar[bool] = False
    default_metric: ClassVar[str] = "f1"
    metrics: ClassVar[tuple[str, ...]] = ("f1", "precision", "recall")
    constrained_decoding: ClassVar[bool] = True

    def labels_of(self, examples: Sequence[Example]) -> list[str]:
        return token_labels(examples)

    def targets(self, split: CachedSplit, texts: list[int], token_targets: torch.Tensor) -> Any:
        return token_targets

    def logits(self, head: TaskHead, batch: Batch) -> torch.Tensor:
        # the head itself refuses missing (or unexpected) case ids with a clear error
        return head.head(head.mixer(batch.activated), batch.mask, batch.case_ids)

    def loss(
        self,
        logits: torch.Tensor,
        batch: Batch,
        label_smoothing: float,
        class_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        return F.cross_entropy(
            logits.float().flatten(0, 1),
            batch.labels.flatten(),
            weight=class_weight,
            ignore_index=IGNORE,
            label_smoothing=label_smoothing,
        )

    @torch.no_grad()
    def token_logits(
        self, head: TaskHead, split: CachedSplit, max_tokens: int, device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (n, labels), gold (n,)) of every labelled cached token (split with case
        ids when the head has case features): what its temperature is fitted on."""
        head.eval()
        logits, gold = [], []
        for units in plan(split, self, max_tokens, shuffle=False):
            batch = load_batch(split, self, units, None).to(torch.device(device))
            keep = batch.labels != IGNORE
            logits.append(self.logits(head, batch).float()[keep].cpu())
            gold.append(batch.labels[keep].cpu())
        return torch.cat(logits), torch.cat(gold)

    @torch.no_grad()
    def token_tables(
        self, head: TaskHead, split: CachedSplit, examples: Sequence[Example], view: CacheView
    ) -> tuple[list[Any], list[torch.Tensor]]:
        """Per text: its encoding and the (tokens, labels) probabilities the engine would
        hold, each token read from the window that owns it."""
        head.eval()
        tok, length, overlap = view.tokenizer, view.max_length, view.overlap
        if head.case_features:
            split = with_case_ids(split, examples, tok, length, overlap)
        encodings = encode_texts(tok, [e.text for e in examples])
        windows = make_windows(encodings, tok, length, overlap)
        if len(windows) != split.num_windows:
            raise ValueError("cached windows do not match these examples")
        tables = [torch.zeros(len(enc.ids), len(head.labels)) for enc in encodings]
        for units in plan(split, self, view.max_tokens, shuffle=False):
            batch = load_batch(split, self, units, None).to(torch.device(view.device))
            probs = head.kind.probabilities(self.logits(head, batch).float()).cpu()
            for row, wi in enumerate(units):
                windows[wi].write_owned(tables[windows[wi].text_index], probs[row])
        return encodings, tables

    def predict_cached(
        self,
        head: TaskHead,
        split: CachedSplit,
        examples: Sequence[Example],
        view: CacheView,
        constrained: bool,
    ) -> list[Any]:
        encodings, tables = self.token_tables(head, split, examples, view)
        texts = [
            TokenTable(e.text, enc.offsets, enc.word_ids, table)
            for e, enc, table in zip(examples, encodings, tables, strict=True)
        ]
        return list(token_entities_many(texts, head.labels, constrained))

    def from_answer(self, answer: Any, labels: Sequence[str]) -> Any:
        return answer

    def score(
        self, head: TaskHead, examples: Sequence[Example], predictions: Sequence[Any]
    ) -> dict[str, Any]:
        tokens = [e for e in examples if isinstance(e, TokenExample)]
        pred_tags = [
            entities_to_tags(e.tokens, ents) for e, ents in zip(tokens, predictions, strict=True)
        ]
        return ner_metrics([e.tags for e in tokens], pred_tags)

    def calibration_data(
        self, head: TaskHead, split: CachedSplit, examples: Sequence[Example], device: Any
    ) -> tuple[torch.Tensor, list[int]]:
        logits, gold = self.token_logits(head, split, 16384, device)
        return logits, [int(x) for x in gold.tolist()]
