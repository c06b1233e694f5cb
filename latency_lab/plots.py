"""What a device profile says, as numbers (`profile_figures`, shared by the table and the
JSON of `latency-lab show`) and as a picture (`plot_roofline`).

matplotlib is imported only inside `plot_roofline`, and through its object-oriented
API with the Agg canvas: no pyplot, no global backend switch, nothing opens a window.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from latency_lab.errors import LatencyLabError
from latency_lab.profile import unstable_count

__all__ = ["profile_figures", "RooflinePoint", "roofline_points", "roofline_figure",
           "plot_roofline", "save_figure", "unstable_label", "profile_cache_ceilings"]

CLASS_ORDER = ("dense", "depthwise", "elementwise")
# One hue family per op class: the ceiling is the darkest shade, the ops of that class
# take lighter shades (and their own marker), so a point reads against its own roof.
CEILING_COLOUR = {"dense": "#08306b", "depthwise": "#a63603", "elementwise": "#00441b"}
CEILING_STYLE = {"dense": "-", "depthwise": "--", "elementwise": "-."}
SAMPLE_STYLES = {
    "dense": [("#2171b5", "o"), ("#41b6c4", "D"), ("#6baed6", "h"), ("#225ea8", "p")],
    "depthwise": [("#e6550d", "^"), ("#fdae6b", "v"), ("#d94801", "<")],
    "elementwise": [("#31a354", "s"), ("#bcbd22", "P"), ("#78c679", "X"),
                    ("#8c6d31", "D"), ("#006837", "*"), ("#c2a83e", "v")],
}
_OTHER_COLOURS = ["#756bb1", "#e377c2", "#7f7f7f", "#9e9ac8"]
_SHARED_COLOUR = "#252525"
_MEMORY_COLOUR = "#636363"
# Cache ceilings: memory slopes too, so greys/purples apart from the class hues.
_CACHE_COLOURS = {"L1d": "#3f007d", "L2": "#6a51a3", "L3": "#807dba", "cache": "#6a51a3"}


# ----------------------------------------------------------------- numbers


def profile_figures(prof) -> dict:
    """Derived figures of a profile: ceilings in GFLOP/s, bandwidth in GB/s, ridge
    points in FLOP/byte, overheads in microseconds, per-op sample statistics, the
    provenance citations and the progress state. Plain JSON data."""
    roof = prof.roofline
    bw = roof["memory_bytes_per_s"]
    classes = _ordered_classes(roof["compute_flops_per_s"])
    per_op: dict[str, dict] = {}
    for op in sorted({s.op for s in prof.samples}):
        rows = prof.samples_for(op)
        spreads = [s.iqr_ms / s.median_ms for s in rows]
        per_op[op] = {"count": len(rows),
                      "median_spread": statistics.median(spreads),
                      "unstable": unstable_count(rows)}
    citations: list[dict] = []
    for src in prof.provenance["sources"]:
        entry = next((c for c in citations if c["citation"] == src["citation"]), None)
        if entry is None:
            entry = {"citation": src["citation"], "url": src.get("url"), "quantities": []}
            citations.append(entry)
        if src["quantity"] not in entry["quantities"]:
            entry["quantities"].append(src["quantity"])
    progress = prof.progress
    if progress is None:
        state = "complete"
    else:
        state = "complete" if progress["complete"] else "partial"
    return {
        "ceilings_gflop_per_s": {c: roof["compute_flops_per_s"][c] / 1e9 for c in classes},
        "memory_gb_per_s": bw / 1e9,
        "ridge_flop_per_byte": {c: roof["compute_flops_per_s"][c] / bw for c in classes},
        "overhead_us": {"per_op": prof.per_op_overhead_ms * 1e3,
                        "per_invocation": prof.per_invocation_overhead_ms * 1e3},
        "samples_per_op": per_op,
        "samples_total": len(prof.samples),
        "unstable_total": unstable_count(prof.samples),
        "citations": citations,
        "progress": {"state": state, **(progress or {})},
    }


def _ordered_classes(ceilings: dict) -> list[str]:
    return [c for c in CLASS_ORDER if c in ceilings] + sorted(
        c for c in ceilings if c not in CLASS_ORDER)


@dataclass(frozen=True)
class RooflinePoint:
    op: str
    op_class: str
    intensity_flop_per_byte: float
    attained_gflop_per_s: float
    unstable: bool


def roofline_points(prof) -> tuple[list[RooflinePoint], dict[str, int]]:
    """(points, skipped): one point per sample that has FLOPs, from the cost registry
    (`op_kinds.work`) and its median time; `skipped` counts, per op, the samples that
    cannot sit on a roofline (overhead chains, data-movement ops with no FLOPs, ops
    unknown to this version)."""
    from latency_lab import op_kinds

    points: list[RooflinePoint] = []
    skipped: dict[str, int] = {}
    for s in prof.samples:
        if s.op in op_kinds.AUXILIARY or s.op not in op_kinds.names():
            skipped[s.op] = skipped.get(s.op, 0) + 1
            continue
        try:
            w = op_kinds.work(s.op, s.config)
            cls = op_kinds.op_class(s.op, s.config)
        except (LatencyLabError, KeyError, TypeError, ValueError):
            skipped[s.op] = skipped.get(s.op, 0) + 1
            continue
        if w.flops <= 0 or w.bytes_total <= 0:
            skipped[s.op] = skipped.get(s.op, 0) + 1
            continue
        points.append(RooflinePoint(
            op=s.op, op_class=cls, intensity_flop_per_byte=w.flops / w.bytes_total,
            attained_gflop_per_s=w.flops / (s.min_ms / 1e3) / 1e9, unstable=s.unstable))
    return points, skipped


def profile_cache_ceilings(prof) -> list:
    """The cache bandwidth ceilings of a profile's weight-streaming curve
    (`bench.ceilings.cache_ceilings`), with the cache sizes its device info records
    (none for a datasheet or GPU profile: the curve's knees decide)."""
    from latency_lab.bench.ceilings import cache_ceilings, profile_weight_curve

    cpu = prof.device.get("info", {}).get("cpu")
    sizes = cpu.get("cache_bytes") if isinstance(cpu, dict) else None
    return cache_ceilings(profile_weight_curve(prof), prof.memory_bytes_per_s,
                          sizes if isinstance(sizes, dict) else None)


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def unstable_label(plotted: int, total: int) -> str:
    """Legend text of the unstable ring: the profile's unstable count (the one `show`
    gives), and how many of them are drawn when some cannot sit on a roofline."""
    if plotted == total:
        return f"unstable ({total})"
    return f"unstable ({total}; {total - plotted} not plotted)"


# ----------------------------------------------------------------- picture


def _plain(text: str) -> str:
    """Text from a profile shown literally: a '$' would start matplotlib mathtext."""
    return str(text).replace("$", r"\$")


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _runtime_text(prof) -> str:
    r = prof.runtime
    if r["name"] == "spec":
        return "datasheet figures"
    parts = [r["name"]]
    if r.get("version"):
        parts.append(str(r["version"]))
    if r.get("backend"):
        parts.append(f"({r['backend']})")
    text = " ".join(parts)
    if r.get("threads"):
        text += f", {r['threads']} thread{'s' if r['threads'] != 1 else ''}"
    return text


def _decade_floor(v: float) -> float:
    return 10.0 ** math.floor(math.log10(v))


def _decade_ceil(v: float) -> float:
    return 10.0 ** math.ceil(math.log10(v))


def _spread_labels(values: list[float], min_gap: float) -> list[float]:
    """Log10 positions for labels at `values` (log10), descending, at least `min_gap`
    apart: a label that would overlap the one above moves down."""
    out: list[float] = []
    for v in values:
        if out and out[-1] - v < min_gap:
            v = out[-1] - min_gap
        out.append(v)
    return out


def plot_roofline(prof, path, *, dpi: int = 150) -> Path:
    """Save `roofline_figure(prof)` to `path` (format from the suffix; PNG if there is
    none). Written to a temporary file in the same directory, then renamed, so a reader
    never sees half a file. Raises LatencyLabError for an unwritable path or an unknown
    format."""
    path = Path(os.fspath(path))
    _save_atomic(roofline_figure(prof), path, path.suffix[1:].lower() or "png", dpi)
    return path


def _place_slope_label(ax, renderer, placed, text, x, x_max, slope_bytes_per_s,
                       **style):
    """Annotate the line y = slope * x at the first x from `x` on (steps of 1.25x, up
    to `x_max`) where the label's box overlaps none of `placed` and stays inside the
    axes; the last try if none does. Returns the text artist."""
    axes_box = ax.get_window_extent(renderer)
    while True:
        p0 = ax.transData.transform((x, slope_bytes_per_s * x))
        p1 = ax.transData.transform((x * 10, slope_bytes_per_s * x * 10))
        angle = math.degrees(math.atan2(p1[1] - p0[1], p1[0] - p0[0]))
        t = ax.annotate(text, (x, slope_bytes_per_s * x), xytext=(3, 5),
                        textcoords="offset points", rotation=angle,
                        rotation_mode="anchor", ha="left", va="bottom", fontsize=10,
                        fontweight="bold", zorder=8, **style,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none",
                                  alpha=0.85))
        box = t.get_window_extent(renderer)
        inside = axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 and box.y1 <= axes_box.y1
        free = not any(box.overlaps(o.get_window_extent(renderer)) for o in placed)
        if (inside and free) or x * 1.25 > x_max:
            return t
        t.remove()
        x *= 1.25


def roofline_figure(prof):
    """A log-log roofline chart of `prof` (a matplotlib Figure on an Agg canvas).

    Each compute class's ceiling is min(peak, bandwidth * intensity): the memory slope
    they share is drawn once (grey) up to the highest ridge point, each flat part in
    the class colour from its ridge point (dot) on. Classes with the same peak (spec
    profiles) are drawn as one line. Cache levels whose streaming bandwidth the
    profile measured (`profile_cache_ceilings`) are dotted slopes above the memory
    one: small ops whose working set fits a cache sit above the DRAM line, under
    theirs. Ceiling labels never overlap (each slides along its line until free)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    roof = prof.roofline
    bw_gb = roof["memory_bytes_per_s"] / 1e9
    ceilings = {c: roof["compute_flops_per_s"][c] / 1e9
                for c in _ordered_classes(roof["compute_flops_per_s"])}
    points, skipped = roofline_points(prof)

    groups: list[tuple[float, list[str]]] = []
    for cls, peak in sorted(ceilings.items(), key=lambda kv: -kv[1]):
        if groups and math.isclose(groups[-1][0], peak, rel_tol=1e-6):
            groups[-1][1].append(cls)
        else:
            groups.append((peak, [cls]))

    ridges = [peak / bw_gb for peak, _ in groups]
    xs = [p.intensity_flop_per_byte for p in points]
    x_lo = _decade_floor(min(xs + [min(ridges) / 10]) / 1.5 if xs else min(ridges) / 90)
    x_hi = _decade_ceil(max(xs + [max(ridges) * 10]) * 3)
    top = max(ceilings.values())
    y_lo = _decade_floor(min([p.attained_gflop_per_s for p in points] + [bw_gb * x_lo]) / 2)
    y_hi = _decade_ceil(top * 3)

    has_samples = bool(points)
    fig = Figure(figsize=(11.5, 6.5) if has_samples else (9, 6.5))
    FigureCanvasAgg(fig)
    # Fixed margins (no layout engine) so the slope label's angle, computed from display
    # coordinates below, is still right when the file is written.
    fig.subplots_adjust(left=0.085, right=0.70 if has_samples else 0.96, top=0.87,
                        bottom=0.13)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.grid(True, which="major", color="#d9d9d9", linewidth=0.8)
    ax.grid(True, which="minor", color="#f2f2f2", linewidth=0.5)
    ax.set_axisbelow(True)

    # The shared memory slope, once, up to the highest ridge point.
    ax.plot([x_lo, max(ridges)], [bw_gb * x_lo, bw_gb * max(ridges)], color=_MEMORY_COLOUR,
            linewidth=2.4, solid_capstyle="butt", zorder=3)
    handles = [Line2D([], [], color=_MEMORY_COLOUR, linewidth=2.4,
                      label=f"memory {_fmt_rate(bw_gb)} GB/s")]
    log_span = math.log10(y_hi) - math.log10(y_lo)
    label_pos = _spread_labels([math.log10(peak) for peak, _ in groups], 0.06 * log_span)
    for (peak, classes), label_y in zip(groups, label_pos):
        shared = len(classes) > 1
        colour = _SHARED_COLOUR if shared else CEILING_COLOUR.get(classes[0], "#54278f")
        style = "-" if shared else CEILING_STYLE.get(classes[0], ":")
        ridge = peak / bw_gb
        ax.plot([ridge, x_hi], [peak, peak], color=colour, linestyle=style, linewidth=2.4,
                zorder=3)
        ax.plot([ridge], [peak], marker="o", markersize=6, color=colour, zorder=4)
        name = ", ".join(classes)
        ax.text(x_hi / 1.3, 10 ** label_y * 1.15, f"{name}  {_fmt_rate(peak)} GFLOP/s",
                color=colour, ha="right", va="bottom", fontsize=10, fontweight="bold",
                zorder=5, gid=f"ceiling-label:{name}", bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none",
                                    alpha=0.85))
        handles.append(Line2D([], [], color=colour, linestyle=style, linewidth=2.4,
                              marker="o", markersize=5,
                              label=f"{name} (ridge {ridge:.3g} FLOP/B)"))

    # Cache slopes, up to the highest compute peak: bandwidth a small working set gets.
    caches = profile_cache_ceilings(prof)
    for c in caches:
        c_gb = c.bytes_per_s / 1e9
        colour = _CACHE_COLOURS.get(c.level, "#6a51a3")
        ax.plot([x_lo, top / c_gb], [c_gb * x_lo, top], color=colour, linestyle=":",
                linewidth=2.0, zorder=3)
        inside = _fmt_bytes(c.max_working_set_bytes)
        handles.append(Line2D([], [], color=colour, linestyle=":", linewidth=2.0,
                              label=f"{c.level} {_fmt_rate(c_gb)} GB/s "
                                    f"(working set ≤ {inside})"))

    # Slope labels at their low end, where samples rarely are; memory first, then each
    # cache, each sliding up its line past the labels already placed.
    renderer = fig.canvas.get_renderer()
    placed = list(ax.texts)
    def start(slope_gb: float) -> float:  # the low end, above the bottom axis
        return max(x_lo * 1.25, y_lo * 1.5 / slope_gb)

    placed.append(_place_slope_label(
        ax, renderer, placed, f"memory {_fmt_rate(bw_gb)} GB/s", start(bw_gb), max(ridges),
        bw_gb, color=_MEMORY_COLOUR, gid="ceiling-label:memory"))
    for c in caches:
        c_gb = c.bytes_per_s / 1e9
        placed.append(_place_slope_label(
            ax, renderer, placed, f"{c.level} {_fmt_rate(c_gb)} GB/s", start(c_gb),
            top / c_gb, c_gb, color=_CACHE_COLOURS.get(c.level, "#6a51a3"),
            gid=f"ceiling-label:{c.level}"))

    # Samples: class hue family and marker, a distinct shade per op.
    sample_handles = []
    by_class: dict[str, dict[str, list[RooflinePoint]]] = {}
    for p in points:
        by_class.setdefault(p.op_class, {}).setdefault(p.op, []).append(p)
    extra = iter(_OTHER_COLOURS * 4)
    for cls in _ordered_classes(by_class):
        styles = SAMPLE_STYLES.get(cls, [])
        ops = sorted(by_class[cls], key=lambda o: (-len(by_class[cls][o]), o))
        for i, op in enumerate(ops):
            mine = by_class[cls][op]
            colour, marker = styles[i] if i < len(styles) else (next(extra), "o")
            ax.scatter([p.intensity_flop_per_byte for p in mine],
                       [p.attained_gflop_per_s for p in mine], s=30, marker=marker,
                       color=colour, alpha=0.85, edgecolors="white", linewidths=0.5,
                       zorder=6)
            sample_handles.append(Line2D([], [], linestyle="none", marker=marker,
                                         color=colour, markersize=7,
                                         label=f"{op} ({cls}, {len(mine)})"))
    unstable = [p for p in points if p.unstable]
    n_unstable = unstable_count(prof.samples)  # the count `show` gives
    if unstable:
        ax.scatter([p.intensity_flop_per_byte for p in unstable],
                   [p.attained_gflop_per_s for p in unstable], s=80, marker="o",
                   facecolors="none", edgecolors="black", linewidths=0.8, zorder=7)
        sample_handles.append(Line2D([], [], linestyle="none", marker="o", markersize=9,
                                     markerfacecolor="none", markeredgecolor="black",
                                     label=unstable_label(len(unstable), n_unstable)))

    ax.set_xlabel("arithmetic intensity (FLOP/byte)", fontsize=11)
    ax.set_ylabel("attained performance (GFLOP/s)", fontsize=11)
    centre = (0.085 + (0.70 if has_samples else 0.96)) / 2
    fig.suptitle(f"Roofline: {_plain(prof.device_name)}", fontsize=14, fontweight="bold",
                 x=centre, y=0.975)
    sub = f"{_plain(_runtime_text(prof))} · {prof.provenance_kind} profile"
    if prof.samples:
        sub += (f" · {len(prof.samples)} samples ({n_unstable} unstable) · overhead "
                f"{prof.per_op_overhead_ms * 1e3:.2f} µs/op, "
                f"{prof.per_invocation_overhead_ms * 1e3:.2f} µs/call")
    ax.set_title(sub, fontsize=10, color="#444444", pad=10)

    if has_samples:
        leg = ax.legend(handles=handles, title="ceilings", loc="upper left",
                        bbox_to_anchor=(1.03, 1.0), fontsize=9, title_fontsize=10,
                        frameon=False, alignment="left")
        ax.add_artist(leg)
        # The samples legend starts below the ceilings one, however long that grew.
        below = leg.get_window_extent(renderer).transformed(ax.transAxes.inverted()).y0
        ax.legend(handles=sample_handles, title="samples (op, class, count)",
                  loc="upper left", bbox_to_anchor=(1.03, min(0.70, below - 0.03)), fontsize=9,
                  title_fontsize=10, frameon=False, alignment="left")
    else:
        ax.legend(handles=handles, title="ceilings", loc="lower right", fontsize=9,
                  title_fontsize=10, framealpha=0.95, alignment="left")
    notes = []
    if skipped:
        notes.append("not plotted (no FLOPs, or overhead chains): " + ", ".join(
            f"{op} ({k})" for op, k in sorted(skipped.items())))
    if not prof.samples:
        notes.append("datasheet profile: ceilings only, no measured samples")
    if notes:
        fig.text(0.085, 0.02, "\n".join(notes), fontsize=8.5, color="#555555",
                 ha="left", va="bottom")
    return fig


def _save_atomic(fig, path: Path, fmt: str, dpi: int) -> None:
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise LatencyLabError(
            f"{path}: cannot write a plot in format {fmt!r}; use a file name ending in "
            f"one of {', '.join('.' + k for k in sorted(supported))} (e.g. roofline.png).")
    directory = path.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise LatencyLabError(
            f"{path}: cannot write the plot: {e.strerror or e} (directory '{directory}'); "
            f"create the directory, make it writable, or choose another --plot path.") from e
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi, facecolor="white")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise LatencyLabError(
                f"{path}: could not write the plot: {e.strerror or e}; check free disk "
                f"space and permissions, or choose another --plot path.") from e
        raise


def save_figure(fig, path, *, dpi: int = 150) -> Path:
    """Write any matplotlib figure atomically (format from the suffix)."""
    path = Path(path)
    _save_atomic(fig, path, path.suffix.lstrip(".").lower() or "png", dpi)
    return path
