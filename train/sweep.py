"""Seed-sweep summary from trained head folders: a markdown table and a strip plot.

`python -m train.sweep --metric cola_dev_mcc --target 0.30 --out docs/cola_seed_sweep.png
"balanced=runs/cola7-bal-s*" "balanced, --ema 0.95=runs/cola12-ema95-s*"` reads each folder's
manifest (the recorded dev metric of its best checkpoint), so the figure in docs/quality.md
shows recorded numbers only, one dot per seed, with each setting's mean and standard deviation.
"""

from __future__ import annotations

import glob
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.flags import EnvFlagParser, command_prefix, parse_with_env
from heads.io import read_manifest
from train.plots import pyplot


@dataclass(frozen=True)
class Setting:
    label: str
    values: list[float]
    folders: list[str]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def read_setting(spec: str, metric: str) -> Setting:
    """``"label=glob"``: the metric of every head folder the glob matches, in name order."""
    label, sep, pattern = spec.rpartition("=")
    if not sep or not label or not pattern:
        raise SystemExit(f"setting {spec!r}: write LABEL=GLOB, e.g. 'balanced=runs/cola7-bal-s*'")
    folders = sorted(
        (p for p in glob.glob(pattern) if (Path(p) / "manifest.json").is_file()),
        key=lambda p: (len(p), p),
    )
    if not folders:
        raise SystemExit(f"setting {label!r}: no head folder matches {pattern!r}")
    values = []
    keys = metric.split("+")  # "a+b+c": the mean of several keys (NER's three case views)
    for folder in folders:
        metrics = read_manifest(folder).metrics
        for key in keys:
            if key not in metrics:
                raise SystemExit(f"{folder}: its manifest has no metric {key!r}")
        values.append(sum(float(metrics[k]) for k in keys) / len(keys))
    return Setting(label, values, folders)


def pick(setting: Setting) -> str:
    """The folder with the highest value (the first on ties): with a validation metric, the
    seed the protocol ships, chosen without looking at dev."""
    best = max(range(len(setting.values)), key=lambda i: (setting.values[i], -i))
    return setting.folders[best]


def table(settings: Sequence[Setting]) -> str:
    lines = ["| setting | seeds | per seed | mean ± sd | min - max |", "|---|---|---|---|---|"]
    for s in settings:
        per_seed = " ".join(f"{v:.4f}" for v in s.values)
        lines.append(
            f"| {s.label} | {len(s.values)} | {per_seed} | {s.mean:.3f} ± {s.sd:.3f} "
            f"| {min(s.values):.3f} - {max(s.values):.3f} |"
        )
    return "\n".join(lines)


def plot(
    settings: Sequence[Setting], metric: str, target: float | None, title: str, path: Path
) -> None:
    """One row per setting: a dot per seed, the mean as a bar, ± one sd as a line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(settings) + 1.4))
    for row, s in enumerate(settings):
        y = len(settings) - 1 - row
        ax.scatter(s.values, [y] * len(s.values), s=18, alpha=0.6, color="tab:blue", zorder=3)
        ax.errorbar(s.mean, y, xerr=s.sd, fmt="|", color="black", ms=14, capsize=3, zorder=4)
    if target is not None:
        ax.axvline(target, color="tab:red", linestyle="--", linewidth=1, label=f"target {target}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(settings)), [s.label for s in reversed(settings)], fontsize=8)
    ax.set_xlabel(f"{metric} (dot: one seed; bar: mean ± sd)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = EnvFlagParser(prog="python -m train.sweep", description=__doc__, fromfile_prefix_chars="@")
    p.add_argument(
        "settings",
        nargs="+",
        help="LABEL=GLOB of head folders, one per setting; @FILE reads them one per line",
    )
    p.add_argument(
        "--metric",
        required=True,
        help="manifest metric key, e.g. cola_dev_mcc; KEY+KEY+... averages several",
    )
    p.add_argument("--target", type=float, default=None, help="draw this value as a line")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--out", default=None, help="PNG path (default: the table only)")
    p.add_argument(
        "--pick",
        action="store_true",
        help="also print, per setting, the folder with the highest value of --metric (use a "
        "validation metric: the protocol's choice of seed, made without dev)",
    )
    args = parse_with_env(p, argv, command_prefix("sweep"))
    settings = [read_setting(spec, args.metric) for spec in args.settings]
    print(table(settings))
    if args.pick:
        for s in settings:
            print(f"picked ({s.label}, highest {args.metric}): {pick(s)}")
    if args.out:
        plot(settings, args.metric, args.target, args.title, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
