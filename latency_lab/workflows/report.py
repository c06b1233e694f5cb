"""What a shrink run produced and how it is written down: `ModelRow` (one model of the
comparison), `ShrinkResult` (the whole run, plain JSON through ``to_dict``), and
`write_report`: ``result.json``, ``report.md``, ``accuracy_vs_latency.png`` and
``channels.png``, each written atomically.

matplotlib is imported only inside the figure functions, through its object-oriented API
with the Agg canvas (no pyplot, no global backend switch, no figure left open).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

__all__ = ["ModelRow", "ShrinkResult", "write_report", "report_markdown",
           "accuracy_figure", "channels_figure"]


@dataclasses.dataclass
class ModelRow:
    """One model of the comparison."""

    name: str
    structure: dict[str, int]
    accuracy: float
    predicted_ms: float
    measured_ms: float | None = None  # fastest repeat over the passes (the latency figure)
    iqr_ms: float | None = None
    params: int = 0
    median_ms: float | None = None  # median over the passes' repeats

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ShrinkResult:
    """Everything one `shrink` run found: the rows (full, learned, uniform), the raw
    learned structure and its predicted latency, the snap (factor and the predicted
    goals after the measured correction), the strength the controller used, and the
    files written."""

    target_ms: float
    profile: str
    runtime: dict
    algorithm: str
    rows: dict[str, ModelRow]
    learned_raw: dict[str, int]
    learned_raw_ms: float
    snap_factor: float
    snap_goal_ms: dict[str, float]
    strength_history: list[tuple[int, float, float]]
    retrain_from: str = "pretrained"
    files: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["rows"] = {k: v.to_dict() for k, v in self.rows.items()}
        return d


def write_report(result: ShrinkResult, out_dir: str | os.PathLike) -> list[Path]:
    """``report.md``, ``result.json``, ``accuracy_vs_latency.png`` and ``channels.png``
    in ``out_dir`` (each written atomically)."""
    from latency_lab.plots import save_figure
    from latency_lab.profile import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    write_json_atomic(out / "result.json", result.to_dict(), "the shrink result")
    paths.append(out / "result.json")
    paths.append(save_figure(accuracy_figure(result), out / "accuracy_vs_latency.png"))
    paths.append(save_figure(channels_figure(result), out / "channels.png"))
    md = out / "report.md"
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(report_markdown(result))
    os.replace(tmp, md)
    paths.append(md)
    return paths


def report_markdown(result: ShrinkResult) -> str:
    """The text of ``report.md``: the comparison table and the channels per layer."""
    rt = result.runtime
    lines = [
        f"# shrink report: target {result.target_ms:g} ms",
        "",
        f"Profile {result.profile} ({rt.get('name')} {rt.get('version')}, "
        f"{rt.get('threads')} thread(s)); algorithm {result.algorithm}. The learned "
        f"structure was predicted at {result.learned_raw_ms:.4g} ms at the end of "
        f"training and scaled by {result.snap_factor:.3f} to meet the target (predicted "
        "goals after the measured correction: "
        + ", ".join(f"{k} {v:.4g} ms" for k, v in result.snap_goal_ms.items()) + "); "
        f"the slim model was retrained from the {result.retrain_from} weights of the "
        "channels the regularizer ranked highest.",
        "",
        "| model | accuracy | predicted ms | measured ms | vs target | params |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result.rows.values():
        meas = "" if r.measured_ms is None else f"{r.measured_ms:.4f}"
        vs = "" if r.measured_ms is None else f"{100 * (r.measured_ms / result.target_ms - 1):+.1f}%"
        lines.append(f"| {r.name} | {100 * r.accuracy:.1f}% | {r.predicted_ms:.4f} | {meas} "
                     f"| {vs} | {r.params} |")
    lines += ["", "## Channels per layer (attention layers: heads)", "",
              "| layer | full | learned (raw) | learned (snapped) |"
              + (" uniform |" if "uniform" in result.rows else ""),
              "|---|---:|---:|---:|" + ("---:|" if "uniform" in result.rows else "")]
    full = result.rows["full"].structure
    for name, n in full.items():
        row = f"| {name} | {n} | {result.learned_raw.get(name, n)} | " \
              f"{result.rows['learned'].structure.get(name, n)} |"
        if "uniform" in result.rows:
            row += f" {result.rows['uniform'].structure.get(name, n)} |"
        lines.append(row)
    lines += ["", "![accuracy vs latency](accuracy_vs_latency.png)", "",
              "![channels](channels.png)", ""]
    return "\n".join(lines)


def _new_figure(figsize):
    """A figure on its own Agg canvas: nothing registered with pyplot, so nothing to
    close and no backend to switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def accuracy_figure(result: ShrinkResult):
    """Validation accuracy against predicted (hollow) and measured (filled) latency of
    every model, with the target as a dashed line."""
    fig = _new_figure((6, 4))
    ax = fig.add_subplot()
    colors = {"full": "tab:gray", "learned": "tab:blue", "uniform": "tab:orange"}
    for r in result.rows.values():
        c = colors.get(r.name, "black")
        ax.scatter([r.predicted_ms], [100 * r.accuracy], marker="o", facecolors="none",
                   edgecolors=c, s=60, label=f"{r.name} (predicted)")
        if r.measured_ms is not None:
            ax.scatter([r.measured_ms], [100 * r.accuracy], marker="s", color=c, s=40,
                       label=f"{r.name} (measured)")
    ax.axvline(result.target_ms, color="tab:red", ls="--", lw=1, label="target")
    ax.set_xlabel("latency per inference (ms)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("accuracy vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def channels_figure(result: ShrinkResult):
    """Output channels per layer of the full, learned (snapped) and uniform models."""
    full = result.rows["full"].structure
    names = list(full)
    series = [("full", full, "tab:gray"),
              ("learned", result.rows["learned"].structure, "tab:blue")]
    if "uniform" in result.rows:
        series.append(("uniform", result.rows["uniform"].structure, "tab:orange"))
    x = np.arange(len(names))
    w = 0.8 / len(series)
    fig = _new_figure((max(6, 0.6 * len(names) + 2), 4))
    ax = fig.add_subplot()
    for i, (label, s, c) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * w, [s.get(n, full[n]) for n in names], w,
               label=label, color=c)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("output channels")
    ax.set_title(f"channels per layer (target {result.target_ms:g} ms)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
