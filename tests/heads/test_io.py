"""Heads are saved as safetensors + JSON, reload identically, and refuse the wrong backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import random_head

from heads.io import HeadLoadError, load_head, read_manifest, save_head
from heads.manifest import MANIFEST_FILE, WEIGHTS_FILE
from heads.registry import load_head_set
from heads.task_head import TaskHead
from models.backbone import Backbone, BackboneInfo


@pytest.mark.parametrize("kind", ["sequence", "token"])
def test_round_trip_gives_identical_outputs(
    tiny_roberta: Backbone, tmp_path: Path, kind: str
) -> None:
    head = random_head(tiny_roberta.info, "task", kind=kind, k=16, positions=True)
    save_head(head, tmp_path / "task")
    assert sorted(p.name for p in (tmp_path / "task").iterdir()) == [WEIGHTS_FILE, MANIFEST_FILE]
    loaded = load_head(tmp_path / "task", tiny_roberta.info)
    features = torch.randn(3, 7, 16)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.inference_mode():
        torch.testing.assert_close(loaded.head(features, mask), head.head(features, mask))
    a, b = head.projection(), loaded.projection()
    torch.testing.assert_close(a.projection, b.projection)
    torch.testing.assert_close(a.layer_weights, b.layer_weights)
    assert loaded.manifest == head.manifest


def test_fingerprint_mismatch_is_a_clear_error(
    tiny_roberta: Backbone, minilm: Backbone, tmp_path: Path
) -> None:
    save_head(random_head(tiny_roberta.info, "task"), tmp_path / "task")
    with pytest.raises(HeadLoadError, match=r"trained on another backbone .*model_type"):
        load_head(tmp_path / "task", minilm.info)


def test_same_shape_other_weights_is_refused_by_hash(
    tiny_roberta: Backbone, tmp_path: Path
) -> None:
    head = random_head(tiny_roberta.info, "task")
    manifest = head.manifest.model_copy(deep=True)
    manifest.backbone.embedding_hash = "0" * 16
    head.manifest = manifest
    save_head(head, tmp_path / "task")
    with pytest.raises(HeadLoadError, match="embedding_hash"):
        load_head(tmp_path / "task", tiny_roberta.info)


def test_corrupt_weights_file_is_a_clear_error(tiny_roberta: Backbone, tmp_path: Path) -> None:
    save_head(random_head(tiny_roberta.info, "task"), tmp_path / "task")
    (tmp_path / "task" / WEIGHTS_FILE).write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(HeadLoadError, match="corrupt safetensors"):
        load_head(tmp_path / "task", tiny_roberta.info)


def test_truncated_weights_file_is_a_clear_error(tiny_roberta: Backbone, tmp_path: Path) -> None:
    save_head(random_head(tiny_roberta.info, "task"), tmp_path / "task")
    weights = tmp_path / "task" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(HeadLoadError):
        load_head(tmp_path / "task", tiny_roberta.info)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"name": "../../etc"}, "invalid manifest"),
        ({"kind": "regression"}, "invalid manifest"),
        ({"labels": ["only-one"]}, "invalid manifest"),
        ({"unexpected": 1}, "invalid manifest"),
    ],
)
def test_bad_manifests_are_refused(
    tiny_roberta: Backbone, tmp_path: Path, patch: dict[str, object], message: str
) -> None:
    save_head(random_head(tiny_roberta.info, "task"), tmp_path / "task")
    path = tmp_path / "task" / MANIFEST_FILE
    data = json.loads(path.read_text())
    data.update(patch)
    path.write_text(json.dumps(data))
    with pytest.raises(HeadLoadError, match=message):
        read_manifest(tmp_path / "task")


def test_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(HeadLoadError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_head_set_refuses_or_skips_bad_heads(tiny_roberta: Backbone, tmp_path: Path) -> None:
    save_head(random_head(tiny_roberta.info, "good"), tmp_path / "good")
    save_head(random_head(tiny_roberta.info, "bad"), tmp_path / "bad")
    (tmp_path / "bad" / WEIGHTS_FILE).write_bytes(b"junk")
    with pytest.raises(HeadLoadError):
        load_head_set([tmp_path], tiny_roberta.info)
    heads = load_head_set([tmp_path], tiny_roberta.info, skip_failures=True)
    assert heads.names == ["good"]
    assert len(heads.failures) == 1 and "bad" in heads.failures[0].folder


def test_head_named_like_the_main_task_is_refused(tiny_roberta: Backbone, tmp_path: Path) -> None:
    save_head(random_head(tiny_roberta.info, "embedding"), tmp_path / "embedding")
    with pytest.raises(HeadLoadError, match="already taken"):
        load_head_set([tmp_path], tiny_roberta.info, reserved=["embedding"])


def _save_with(info: BackboneInfo, folder: Path, **changes: object) -> Path:
    """A random head whose manifest (and so its tensors) were made with ``changes``."""
    manifest = random_head(info, "odd").manifest.model_copy(update=changes)
    return save_head(TaskHead(manifest), folder)


def test_attention_heads_that_do_not_divide_k_are_a_load_error(
    tiny_roberta: Backbone, tmp_path: Path
) -> None:
    save_head(random_head(tiny_roberta.info, "good"), tmp_path / "good")
    odd = save_head(random_head(tiny_roberta.info, "odd", k=16), tmp_path / "odd")
    data = json.loads((odd / MANIFEST_FILE).read_text())
    data["num_attention_heads"] = 3  # the schema accepts it; nn.MultiheadAttention asserts
    (odd / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(HeadLoadError, match="k=16, not a multiple of its num_attention_heads=3"):
        load_head(odd, tiny_roberta.info)
    heads = load_head_set([tmp_path], tiny_roberta.info, skip_failures=True)
    assert heads.names == ["good"] and "num_attention_heads" in heads.failures[0].error


def test_positions_shorter_than_the_window_are_a_load_error(
    tiny_roberta: Backbone, tmp_path: Path
) -> None:
    window = tiny_roberta.info.max_length
    short = _save_with(tiny_roberta.info, tmp_path / "short", positions=True, max_positions=8)
    assert window > 8
    with pytest.raises(HeadLoadError, match=f"positions for 8 tokens.*windows hold {window}"):
        load_head(short, tiny_roberta.info)
    load_head(short)  # without a backbone to compare with, the folder itself is fine
    enough = tmp_path / "enough"
    _save_with(tiny_roberta.info, enough, positions=True, max_positions=window)
    assert load_head(enough, tiny_roberta.info).manifest.max_positions == window


def test_layer_logits_for_another_depth_are_a_load_error(
    tiny_roberta: Backbone, tmp_path: Path
) -> None:
    folder = save_head(random_head(tiny_roberta.info, "task"), tmp_path / "task")
    data = json.loads((folder / MANIFEST_FILE).read_text())
    data["layer_logits"] = data["layer_logits"][:-1]
    (folder / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(HeadLoadError, match="layer_logits"):
        load_head(folder, tiny_roberta.info)


def test_any_failure_to_build_a_head_is_a_load_error(
    tiny_roberta: Backbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = save_head(random_head(tiny_roberta.info, "task"), tmp_path / "task")

    def broken(manifest: object) -> None:
        raise AssertionError("embed_dim must be divisible by num_heads")

    monkeypatch.setattr("heads.io.TaskHead", broken)
    with pytest.raises(HeadLoadError, match=r"cannot build head 'task' \(AssertionError"):
        load_head(folder, tiny_roberta.info)
    assert load_head_set([tmp_path], tiny_roberta.info, skip_failures=True).names == []
