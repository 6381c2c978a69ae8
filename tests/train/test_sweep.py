"""The seed-sweep summary reports the recorded metrics of the folders it is given."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import random_head

from heads.io import save_head
from models.backbone import Backbone
from train.sweep import main


def saved_runs(tmp_path: Path, backbone: Backbone, name: str, values: list[float]) -> None:
    for seed, value in enumerate(values):
        head = random_head(backbone.info, "toy", seed=seed)
        head.manifest = head.manifest.model_copy(update={"metrics": {"toy_dev_mcc": value}})
        save_head(head, tmp_path / f"{name}-s{seed}")


def test_table_and_plot_from_manifests(
    tmp_path: Path, tiny_roberta: Backbone, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_runs(tmp_path, tiny_roberta, "a", [0.2, 0.3, 0.4])
    saved_runs(tmp_path, tiny_roberta, "b", [0.25, 0.25])
    (tmp_path / "a-s9-unfinished").mkdir()  # no manifest: not a run
    out = tmp_path / "sweep.png"
    argv = [f"first={tmp_path}/a-s*", f"second={tmp_path}/b-s*", "--metric", "toy_dev_mcc"]
    assert main([*argv, "--target", "0.3", "--out", str(out)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2] == "| first | 3 | 0.2000 0.3000 0.4000 | 0.300 ± 0.100 | 0.200 - 0.400 |"
    assert rows[3] == "| second | 2 | 0.2500 0.2500 | 0.250 ± 0.000 | 0.250 - 0.250 |"
    assert out.stat().st_size > 1000


def test_unknown_metric_and_empty_glob_are_refused(tmp_path: Path, tiny_roberta: Backbone) -> None:
    saved_runs(tmp_path, tiny_roberta, "a", [0.2])
    with pytest.raises(SystemExit, match="no metric 'toy_dev_f1'"):
        main([f"a={tmp_path}/a-s*", "--metric", "toy_dev_f1"])
    with pytest.raises(SystemExit, match="no head folder matches"):
        main([f"a={tmp_path}/zzz*", "--metric", "toy_dev_mcc"])
    with pytest.raises(SystemExit, match="LABEL=GLOB"):
        main([f"{tmp_path}/a-s*", "--metric", "toy_dev_mcc"])


def test_pick_names_the_run_with_the_best_validation_value(
    tmp_path: Path, tiny_roberta: Backbone, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_runs(tmp_path, tiny_roberta, "a", [0.2, 0.4, 0.4, 0.1])
    assert main([f"a={tmp_path}/a-s*", "--metric", "toy_dev_mcc", "--pick"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"picked (a, highest toy_dev_mcc): {tmp_path}/a-s1"  # first of the tie


def test_keys_joined_by_plus_are_averaged(
    tmp_path: Path, tiny_roberta: Backbone, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed, (a, b) in enumerate([(0.8, 0.6), (0.7, 0.9)]):
        head = random_head(tiny_roberta.info, "toy", seed=seed)
        head.manifest = head.manifest.model_copy(update={"metrics": {"x_f1": a, "x_lower_f1": b}})
        save_head(head, tmp_path / f"r-s{seed}")
    assert main([f"r={tmp_path}/r-s*", "--metric", "x_f1+x_lower_f1", "--pick"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("| r | 2 | 0.7000 0.8000 |")
    assert out[-1].endswith(f"{tmp_path}/r-s1")
