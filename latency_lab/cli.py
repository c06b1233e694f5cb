"""`latency-lab` command line. Each subcommand registers itself in COMMANDS; `main`
turns every LatencyLabError into a one-line message and exit code 2 (never a
traceback for bad input)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["COMMANDS", "command", "add_import_args", "build_parser", "quiet_native_logs",
           "show_warning", "main"]

from latency_lab import __version__
from latency_lab.errors import InputSpecError, LatencyLabError, UnknownOpWarning
from latency_lab.native_logs import quiet_native_logs


@dataclass
class Command:
    name: str
    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_args: Callable[[argparse.ArgumentParser], None]):
    def deco(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = Command(name, help, add_args, fn)
        return fn

    return deco


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def add_import_args(p: argparse.ArgumentParser) -> None:
    """`--import MODULE`, for every command that loads a model file (one definition, so
    its meaning and warning read the same everywhere)."""
    p.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import this Python module (a dotted name on PYTHONPATH, not a file path) "
             "before loading models, so the custom layers it registers with "
             "keras.saving.register_keras_serializable load from .keras files, and the "
             "costs (latency_lab.costs.register) and grouping rules it registers apply "
             "(repeatable). This runs the module's code, which you name here; the model "
             "file's code is still never run (Keras safe mode stays on)")


def add_model_args(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    p.add_argument(
        "model", nargs="+" if many else None, metavar="MODEL",
        help="a .keras/.h5 file, or keras.applications.NAME (built with weights=None)",
    )
    p.add_argument("--input-shape", metavar="H,W,C",
                   help="input size without batch, e.g. 224,224,3")
    p.add_argument("--batch-size", type=_positive_int, default=1, metavar="N")
    p.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="keyword for keras.applications.NAME, e.g. alpha=0.5 (repeatable)")
    p.add_argument("--allow-unknown", action="store_true",
                   help="leave out layers without a cost function or latency model (listed "
                        "as skipped) instead of stopping with an error")
    p.add_argument("--unsafe-deserialization", action="store_true",
                   help="load .keras files with Lambda layers, running their Python code "
                        "(only for files you trust)")
    add_import_args(p)


def load_model_from_args(args: argparse.Namespace, spec: str):
    """The model MODEL names, after the `--import` modules (imported once: Python
    caches them), so their layers, costs and grouping rules are registered first."""
    from latency_lab import models

    models.import_modules(getattr(args, "imports", ()))
    shape = models.parse_input_shape(args.input_shape)
    return models.load(spec, models.parse_model_args(args.model_arg), shape,
                       unsafe_deserialization=getattr(args, "unsafe_deserialization", False)), shape


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _say(label: str, style: str, message: str) -> None:
    from rich.text import Text

    # Text, not markup: messages quote user input that may contain [brackets].
    console(stderr=True).print(Text.assemble((label, style), " ", str(message)), soft_wrap=True)


def warn(message: str) -> None:
    _say("warning:", "bold yellow", message)


_OWN_PACKAGES = ("latency_lab", "regularizers")


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` while a command runs: a Python warning is printed as the
    CLI's own ("warning: ..."), not as "/path/file.py:123: Category: ...", which points
    into the library rather than at what the user did. Categories from other packages
    keep their name (e.g. "warning: DeprecationWarning: ...") so it can be looked up."""
    text = str(message)
    if category.__module__.split(".")[0] not in _OWN_PACKAGES:
        text = f"{category.__name__}: {text}"
    warn(text)


# ------------------------------------------------------------------- analyze


def _analyze_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def fmt_count(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:g}"


@command("analyze", "per-layer FLOPs, params and bytes of a model", _analyze_args)
def run_analyze(args: argparse.Namespace) -> int:
    from latency_lab.analyze import analyze_model

    model, shape = load_model_from_args(args, args.model)
    with warnings.catch_warnings():  # every skipped layer, printed by show_warning
        warnings.simplefilter("always", UnknownOpWarning)
        result = analyze_model(model, batch_size=args.batch_size, input_shape=shape,
                               allow_unknown=args.allow_unknown)
    data = result.to_dict()
    data["model"] = args.model
    if args.json:
        print(json.dumps(data))
        return 0
    from rich.table import Table

    table = Table(title=f"{args.model} (batch {args.batch_size})")
    for col in ("layer", "type", "output", "FLOPs", "params", "read", "written"):
        table.add_column(col, justify="left" if col in ("layer", "type", "output") else "right")
    for row in result.layers:
        c = row.cost
        table.add_row(row.name, row.type + ("" if row.known else " (unknown)"),
                      "x".join(map(str, row.output_shape)), fmt_count(c.flops),
                      fmt_count(c.params), fmt_count(c.bytes_read) + "B",
                      fmt_count(c.bytes_written) + "B")
    t = result.total
    table.add_section()
    table.add_row("total", f"{len(result.layers)} ops", "", fmt_count(t.flops),
                  fmt_count(t.params), fmt_count(t.bytes_read) + "B",
                  fmt_count(t.bytes_written) + "B")
    console().print(table)
    return 0


# ------------------------------------------------------------------- profile


def _profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="PROFILE.json", help="profile to write")
    p.add_argument("--runtime", default="litert", choices=["litert", "keras"])
    p.add_argument("--threads", type=_positive_int, default=1, metavar="N")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="keras runtime only: where the backend runs")
    p.add_argument("--quick", action="store_true", help="coarse profile in about a minute")
    p.add_argument("--budget", type=float, metavar="MINUTES",
                   help="stop measuring after this long (what was measured is kept)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true",
                          help="continue an interrupted run in --out without re-measuring")
    existing.add_argument("--overwrite", action="store_true",
                          help="replace an existing --out file (refused without this or "
                               "--resume)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--convert-workers", type=_positive_int, metavar="N",
                   help="litert: processes that convert the microbenchmarks before they are "
                        "timed (default: one per core, at most 4; 1: in this process)")
    p.add_argument("--extend-for", nargs="+", metavar="MODEL",
                   help="instead of a new profile: time the kernels of these models (.keras/"
                        ".h5 files or keras.applications.NAME) that lie outside the table of "
                        "the existing --out profile of this device, and add them to it "
                        "(timed with the profile's own runtime, threads and timing)")
    p.add_argument("--input-shape", metavar="H,W,C", help="with --extend-for")
    p.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="with --extend-for: keyword for keras.applications.NAME (repeatable)")
    p.add_argument("--allow-unknown", action="store_true",
                   help="with --extend-for: leave out layers without a latency model")
    add_import_args(p)


def _run_extend_for(args: argparse.Namespace) -> int:
    """`profile --extend-for`: the --out profile's runtime, threads and timing are used."""
    for flag, given in (("--resume", args.resume), ("--overwrite", args.overwrite),
                        ("--quick", args.quick), ("--budget", args.budget is not None)):
        if given:
            raise InputSpecError(f"{flag} does not apply to --extend-for, which adds samples "
                                 "to the existing --out profile with its own runtime and "
                                 f"timing; leave {flag} out")
    from latency_lab.extend import extend_profile, writable_profile_path

    writable_profile_path(args.out, "--extend-for")
    err = console(stderr=True)

    def models():
        for spec in args.extend_for:
            model, _ = load_model_from_args(args, spec)
            yield spec, model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownOpWarning)
        res = extend_profile(args.out, list(models()), allow_unknown=args.allow_unknown,
                             seed=args.seed,
                             log=lambda m: err.print(m, highlight=False, markup=False))
    for s in res.measured:
        err.print(f"added {s.op} {json.dumps(s.config)}: {s.min_ms:.4f} ms", markup=False,
                  highlight=False)
    err.print(f"{args.out}: {len(res.measured)} sample(s) measured for "
              f"{len(args.extend_for)} model(s), {len(res.profile.samples)} in all"
              + ("; stored lookup fit refreshed" if res.refitted else ""),
              markup=False, highlight=False)
    return 0


def check_threads_arg(threads: int) -> None:
    """--threads above the usable cores: a warning; above 4x: InputSpecError."""
    from latency_lab.device_info import check_threads

    message = check_threads(threads)
    if message:
        warn(message)


@command("profile", "run on-device microbenchmarks and write a device profile", _profile_args)
def run_profile_cmd(args: argparse.Namespace) -> int:
    # Every argument is checked before the profiler (and TensorFlow) is imported.
    if args.extend_for:
        return _run_extend_for(args)
    if args.imports:
        raise InputSpecError("--import loads the custom layers of --extend-for models; a new "
                             "profile loads no model. Drop --import or add --extend-for")
    if args.budget is not None and not args.budget > 0:
        raise InputSpecError(f"--budget must be a positive number of minutes, got {args.budget}")
    check_threads_arg(args.threads)
    from latency_lab.profiler import ProfileRun, check_out_path, run_profile

    out = Path(args.out)
    check_out_path(out, resume=args.resume, overwrite=args.overwrite)
    err = console(stderr=True)
    started = getattr(args, "_started", None) or time.time()
    run = ProfileRun(out=out, runtime=args.runtime, threads=args.threads, device=args.device,
                     quick=args.quick, budget_s=args.budget * 60 if args.budget else None,
                     resume=args.resume, overwrite=args.overwrite, started_at=started,
                     seed=args.seed, convert_workers=args.convert_workers,
                     log=lambda m: err.print(m, highlight=False, markup=False))
    prof = run_profile(run)
    err.print(f"wrote {out} in {time.time() - started:.0f} s: {len(prof.samples)} samples, "
              f"complete={prof.progress.get('complete') if prof.progress else True}",
              markup=False, highlight=False)
    _print_profile_summary(prof)
    return 0


# ---------------------------------------------------------------------- show


def _show_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("profile", metavar="PROFILE",
                   help="a profile .json file or a shipped profile name (e.g. t4)")
    p.add_argument("--plot", metavar="OUT.png",
                   help="also write a log-log roofline chart (ceilings and samples)")
    p.add_argument("--json", action="store_true",
                   help="print the summary and derived figures as one JSON object")


@command("show", "summarize a device profile (table, JSON, roofline chart)", _show_args)
def run_show(args: argparse.Namespace) -> int:
    from latency_lab.plots import plot_roofline, profile_figures
    from latency_lab.profile import load_profile

    prof = load_profile(args.profile)
    if args.json:
        data = prof.summary()
        data["derived"] = profile_figures(prof)
        print(json.dumps(data))
    else:
        _print_profile_summary(prof)
    if args.plot:
        out = plot_roofline(prof, args.plot)
        console(stderr=True).print(f"wrote roofline chart {out}", markup=False,
                                   highlight=False)
    return 0


def _print_profile_summary(prof) -> None:
    """The profile table `profile` prints after a run and `show` prints on request."""
    from rich.table import Table
    from rich.text import Text

    from latency_lab.plots import profile_figures

    fig = profile_figures(prof)
    r = prof.runtime
    # Text, not markup: names and citations come from the file and may hold [brackets].
    t = Table(title=Text(f"{prof.device_name} / {prof.runtime_name} "
                         f"({prof.provenance_kind})"))
    t.add_column("quantity")
    t.add_column("value", overflow="fold")

    def row(name: str, value: str) -> None:
        t.add_row(name, Text(value))

    row("device", prof.device_name)
    row("kind", prof.device_kind)
    row("fingerprint", prof.fingerprint or "none (not tied to one device)")
    if r["name"] == "spec":
        row("runtime", "spec (datasheet figures, not measured)")
    else:
        threads = r["threads"] if r["threads"] is not None else "?"
        row("runtime", f"{r['name']} {r['version'] or '(version unknown)'}"
            f"{' / ' + r['backend'] if r['backend'] else ''}"
            f"{' on ' + r['device'] if r['device'] else ''}, {threads} thread(s), "
            f"{r['dtype']}, batch {r['batch']}")
    row("provenance", prof.provenance_kind)
    for i, c in enumerate(fig["citations"], 1):
        text = f"{c['citation']} (for {', '.join(c['quantities'])})"
        if c.get("url"):
            text += f"\n{c['url']}"
        row(f"source {i}", text)
    t.add_section()
    for cls, v in fig["ceilings_gflop_per_s"].items():
        row(f"ceiling {cls}", f"{v:,.1f} GFLOP/s")
    row("memory bandwidth", f"{fig['memory_gb_per_s']:,.1f} GB/s")
    for cls, v in fig["ridge_flop_per_byte"].items():
        row(f"ridge point {cls}", f"{v:.3g} FLOP/byte")
    t.add_section()
    oh = fig["overhead_us"]
    unknown = prof.provenance_kind == "spec"
    for key, name in (("per_op", "per-op overhead"),
                      ("per_invocation", "per-invocation overhead")):
        if unknown and oh[key] == 0:
            row(name, "unknown (datasheets give none; stored as 0)")
        else:
            row(name, f"{oh[key]:.2f} µs")
    t.add_section()
    row("samples", f"{fig['samples_total']} ({fig['unstable_total']} unstable)")
    p = fig["progress"]
    if "planned" in p:
        state = (f"{p['state']}: {p['done']} of {p['planned']} planned samples, "
                 f"{p['elapsed_s']:.0f} s")
        if p["state"] == "partial":
            state += f"; continue with `latency-lab profile --resume --out {prof.source}`"
    else:
        state = f"{p['state']} (no progress record)"
    row("progress", state)
    out = console()
    out.print(t)
    if fig["samples_per_op"]:
        s = Table(title="samples per op")
        s.add_column("op")
        for col in ("samples", "median spread (IQR/median)", "unstable"):
            s.add_column(col, justify="right")
        for op, st in fig["samples_per_op"].items():
            s.add_row(Text(op), str(st["count"]), f"{st['median_spread'] * 100:.1f}%",
                      str(st["unstable"]))
        out.print(s)


# ------------------------------------------------- predict / measure / validate


def _predict_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--profile", required=True, help="profile JSON path or shipped name")
    p.add_argument("--predictor", default=None, choices=["lookup", "roofline", "flops"],
                   help="default: lookup for measured profiles, roofline for datasheet ones")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--measure-missing", action="store_true",
                   help="time the kernels outside the profile's table on this device, add "
                        "them to the --profile file (a path, not a shipped name) and "
                        "predict again")


@command("predict", "predict a model's latency from a device profile", _predict_args)
def run_predict(args: argparse.Namespace) -> int:
    from latency_lab.predict import predict_model
    from latency_lab.profile import load_profile

    if args.measure_missing:
        _check_measure_missing_args(args)
    prof = load_profile(args.profile)
    model, _ = load_model_from_args(args, args.model)
    predictor = args.predictor or ("lookup" if prof.samples else "roofline")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownOpWarning)  # listed below instead
        res = predict_model(model, prof, predictor, batch_size=args.batch_size,
                            model_name=args.model, allow_unknown=args.allow_unknown)
    before, extended = None, None
    if args.measure_missing:
        before, extended = res, _measure_missing(args, model)
        prof = extended.profile
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownOpWarning)
            res = predict_model(model, prof, predictor, batch_size=args.batch_size,
                                model_name=args.model, allow_unknown=args.allow_unknown)
    if res.skipped:
        warn(f"skipped {len(res.skipped)} with no latency model: " + "; ".join(res.skipped))
    data = res.to_dict()
    data["profile"] = args.profile
    if before is not None:
        data["before"] = {"latency_ms": before.latency_ms,
                          "uncertainty_ms": before.band.uncertainty_ms if before.band else None,
                          "outside_table": before.to_dict()["outside_table"]}
        data["measured_samples"] = [{"op": s.op, "config": s.config, "min_ms": s.min_ms,
                                     "median_ms": s.median_ms, "repeats": s.repeats}
                                    for s in extended.measured]
        data["stored_fit_refreshed"] = extended.refitted
    if args.json:
        print(json.dumps(data))
        return 0
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{args.model} on {prof.device_name} ({prof.runtime_name}, {predictor})",
                  caption=res.rows_note())
    for col in ("layer", "type", "kernels", "ms", "bound"):
        table.add_column(col, justify="right" if col in ("ms", "kernels") else "left")
    outside_layers = {layer for layer, _ in (res.band.outside if res.band else [])}
    if outside_layers:
        table.add_column("table")
    for layer in res.layers:
        row = [layer.name, layer.type, str(layer.kernels), f"{layer.latency_ms:.4f}", layer.bound]
        if outside_layers:
            row.append("OUTSIDE" if layer.name in outside_layers else "")
        table.add_row(*row)
        if len(layer.parts) > 1:  # a layer of several kernels: each, indented (--json
            for part in layer.parts:  # has their configurations)
                table.add_row(Text(f"  {part.kernel}"), part.op or "roofline", "",
                              f"{part.latency_ms:.4f}", "",
                              *([""] if outside_layers else []), style="dim")
    table.add_section()
    total = f"{res.latency_ms:.3f}"
    if res.band is not None:
        total += f" ± {res.band.uncertainty_ms:.3f}"
    table.add_row("total", f"{len(res.layers)} layers", str(res.kernels), total, "")
    console().print(table)
    if res.band is not None and res.band.outside:
        warn(f"{len(res.band.outside)} kernel configuration(s) lie outside the profile's "
             "table, so their predictions are extrapolated (± is one standard deviation):")
        for layer, c in res.band.outside:
            warn(f"  {layer}: {c.op} {c.config}: {c.reason}")
        warn("time them on this device and predict again with --measure-missing, or "
             "ahead of time with `latency-lab profile --extend-for MODEL`")
    if before is not None:
        _print_before_after(before, res, extended)
    return 0


def _check_measure_missing_args(args: argparse.Namespace) -> None:
    """--measure-missing writes into --profile: a file, with the lookup predictor."""
    from latency_lab.extend import writable_profile_path

    if args.predictor not in (None, "lookup"):
        raise InputSpecError(f"--measure-missing adds samples to the lookup table; it needs "
                             f"the lookup predictor, not --predictor {args.predictor}")
    if args.batch_size != 1:
        raise InputSpecError("--measure-missing measures kernels at the profile's batch size "
                             f"(1); got --batch-size {args.batch_size}")
    writable_profile_path(args.profile, "--measure-missing")


def _measure_missing(args: argparse.Namespace, model):
    from latency_lab.extend import extend_profile

    err = console(stderr=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownOpWarning)
        return extend_profile(args.profile, [(args.model, model)],
                              allow_unknown=args.allow_unknown,
                              log=lambda m: err.print(m, highlight=False, markup=False))


def _print_before_after(before, after, extended) -> None:
    from rich.table import Table
    from rich.text import Text

    def total(res) -> str:
        band = f" ± {res.band.uncertainty_ms:.3f}" if res.band is not None else ""
        outside = len(res.band.outside) if res.band is not None else 0
        return f"{res.latency_ms:.3f}{band} ms ({outside} kernel(s) outside the table)"

    out = console()
    if extended.measured:
        t = Table(title="kernels measured and added to the profile")
        for col in ("op", "configuration", "measured ms", "repeats"):
            t.add_column(col, justify="right" if col in ("measured ms", "repeats") else "left")
        for s in extended.measured:
            t.add_row(s.op, Text(json.dumps(s.config)), f"{s.min_ms:.4f}", str(s.repeats))
        out.print(t)
    out.print(f"before: {total(before)}\nafter:  {total(after)}", highlight=False, markup=False)
    if extended.refitted:
        out.print("the profile's stored lookup fit was refreshed for the new samples",
                  highlight=False)
    elif extended.measured:
        warn("the profile's stored lookup fit is stale now; store it again with "
             "`python scripts/fit_profile.py PROFILE.json`")


def _measure_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--runtime", default="litert", choices=["litert", "keras"])
    p.add_argument("--threads", type=_positive_int, default=1, metavar="N")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--passes", type=_positive_int, default=3, metavar="N",
                   help="measuring passes a few seconds apart (default 3); the latency is "
                        "the fastest repeat over all of them")
    p.add_argument("--json", action="store_true", help="print one JSON object")


@command("measure", "measure a model's latency on this machine", _measure_args)
def run_measure(args: argparse.Namespace) -> int:
    check_threads_arg(args.threads)
    from latency_lab import device_info
    from latency_lab.runtimes import get as get_runtime, measure_in_passes
    from latency_lab.timing import TimingConfig, pool_passes

    model, _ = load_model_from_args(args, args.model)
    runtime = get_runtime(args.runtime, threads=args.threads, device=args.device)
    timing = TimingConfig.latency(repeats=20, warmup_runs=3)
    (passes,) = measure_in_passes(runtime, [(args.model, model)], timing, args.passes).values()
    m = pool_passes([p.raw_ms for p in passes], timing.spread_tolerance)
    info = device_info.collect("gpu" if args.device == "gpu" else "cpu")
    data = {"model": args.model, "runtime": args.runtime, "threads": runtime.threads,
            "min_ms": m.min, "median_ms": m.median, "iqr_ms": m.iqr, "repeats": len(m.raw),
            "passes": args.passes,
            "device": {"name": info["name"], "fingerprint": info["fingerprint"]},
            "runtime_version": runtime.info().get("version"), "unstable": m.unstable}
    if args.json:
        print(json.dumps(data))
    else:
        flag = " (unstable: no second pass came within 10% of the fastest call)" if m.unstable else ""
        console().print(f"{args.model}: {m.min:.3f} ms (fastest repeat), median {m.median:.3f} ms, "
                        f"IQR {m.iqr:.3f} ms over {len(m.raw)} repeats in {args.passes} passes "
                        f"({args.runtime} {data['runtime_version']}, "
                        f"{runtime.threads} thread(s), {info['name']}){flag}",
                        markup=False, highlight=False)
    return 0


def _validate_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p, many=True)
    p.add_argument("--profile", required=True, help="a measured profile of this machine")
    p.add_argument("--report", metavar="DIR", help="write validation.json, scatter.png, worst_layers.md")
    p.add_argument("--predictor", action="append", choices=["lookup", "roofline", "flops"],
                   help="predictors to compare (repeatable; default all three)")
    p.add_argument("--passes", type=int, default=3, metavar="N",
                   help="measure every model once per pass, N passes in shuffled order, "
                        "and pool them (default 3; the spread between passes is reported)")
    p.add_argument("--per-layer", action="store_true",
                   help="also time each distinct kernel alone (the profile's harness) and "
                        "report predicted vs measured per kernel and per layer")


def _shown_name(name: str) -> str:
    """A model file is shown by its file name (the JSON report keeps the path)."""
    return Path(name).name if os.sep in name else name


def render_validation(report) -> None:
    from rich.table import Table

    t = Table(title=f"predicted vs measured ({report.runtime['name']}, "
                    f"{report.runtime.get('threads')} thread(s), {report.device['name']})")
    t.add_column("model", overflow="fold", min_width=16)  # wraps instead of ending in …
    t.add_column("measured ms", justify="right")
    t.add_column("median ms", justify="right")
    for p in report.predictors:
        t.add_column(f"{p} ms", justify="right")
        t.add_column("err %", justify="right")
    for r in report.results:
        row = [_shown_name(r.name), f"{r.measured_ms:.3f}",
               "" if r.median_ms is None else f"{r.median_ms:.3f}"]
        for p in report.predictors:
            row += [f"{r.predicted_ms[p]:.3f}", f"{r.error_pct(p):+.1f}"]
        t.add_row(*row)
    console().print(t)
    s = Table(title="summary")
    s.add_column("predictor")
    for col in ("within ±5%", "within ±10%", "RMSPE %", "Spearman", "mean err %"):
        s.add_column(col, justify="right")
    for p, fig in report.summary().items():
        s.add_row(p, f"{100 * fig['within_5pct']:.0f}%", f"{100 * fig['within_10pct']:.0f}%",
                  f"{fig['rmspe_pct']:.1f}", "n/a" if fig["spearman"] is None else f"{fig['spearman']:.3f}", f"{fig['mean_error_pct']:+.1f}")
    console().print(s)
    noise = report.measurement_noise()
    if noise["median_pass_spread_pct"] is not None:
        console().print(f"measurement noise: {noise['passes']} passes per model, the passes' fastest repeats "
                        f"{noise['median_pass_spread_pct']:.1f}% apart (median over "
                        f"models; p90 {noise['p90_pass_spread_pct']:.1f}%)", highlight=False)
    drift = report.drift
    if drift and drift["median_ratio"] is not None:
        each = ", ".join(f"{r['name']} {r['measured_ms']:.3f} vs {r['profile_ms']:.3f} ms"
                         for r in drift["reference"])
        console().print(f"host drift since profiling: the profile's calibration networks ran "
                        f"{100 * (drift['median_ratio'] - 1):+.1f}% (median; {each}); the "
                        "errors above include it", highlight=False)


def render_per_kernel(report, top: int = 10) -> None:
    """Per network: predicted vs measured per Keras layer (kernels timed alone), the
    worst kernels, and the kernels' sum against the measured network."""
    from rich.table import Table
    from rich.text import Text

    p = report.predictors[0]
    out = console()
    for r in report.results:
        k = r.kernels
        if k is None:
            continue
        name = _shown_name(r.name)
        t = Table(title=Text(f"{name}: per layer ({p}; kernels timed alone)"))
        for col in ("layer", "type", "kernels", "predicted ms", "measured ms", "error ms"):
            t.add_column(col, justify="left" if col in ("layer", "type") else "right")
        for row in k.per_layer():
            pred, meas = row["predicted_ms"][p], row["measured_ms"]
            t.add_row(Text(row["layer"]), row["type"], str(row["kernels"]), f"{pred:.4f}",
                      "" if meas is None else f"{meas:.4f}",
                      "" if meas is None else f"{pred - meas:+.4f}")
        out.print(t)
        w = Table(title=Text(f"{name}: worst kernels (largest absolute error first)"))
        for col in ("kernel", "layer", "predicted ms", "measured ms", "error ms"):
            w.add_column(col, justify="left" if col in ("kernel", "layer") else "right",
                         overflow="fold")
        for row in k.worst(p, top):
            w.add_row(Text(row.label), Text(row.layer), f"{row.predicted_ms[p]:.4f}",
                      f"{row.measured_ms:.4f}", f"{row.error_ms(p):+.4f}")
        out.print(w)
        whole = k.measured_ms + k.per_invocation_ms
        out.print(f"{name}: kernels measured alone sum to {k.measured_ms:.4f} ms (+ "
                  f"{k.per_invocation_ms:.4f} ms invocation = {whole:.4f} ms) vs the network "
                  f"measured at {r.measured_ms:.4f} ms ({100 * (whole / r.measured_ms - 1):+.1f}%)"
                  f"; kernels predicted {k.predicted_ms(p):.4f} ms", highlight=False,
                  markup=False)


def render_family_breakdown(report, title: str = "per family") -> None:
    """One row per family and predictor: the figures over the family's models, then
    over all other families' models (leave one family out: what the set's figure
    owes to that family)."""
    from rich.table import Table

    def cell(fig, key, fmt):
        return "" if fig is None or fig[key] is None else format(fig[key], fmt)

    t = Table(title=f"{title}: per family, and leaving each family out (w/o); ρ: Spearman")
    t.add_column("family", no_wrap=True)
    t.add_column("predictor", no_wrap=True)
    for col in ("n", "±5%", "±10%", "RMSPE", "ρ", "mean %", "w/o ±10%", "w/o RMSPE", "w/o ρ"):
        t.add_column(col, justify="right")
    for fam, row in report.family_breakdown().items():
        for i, p in enumerate(report.predictors):
            mine, rest = row["alone"][p], row["without"][p]
            t.add_row(fam if i == 0 else "", p, str(row["models"]) if i == 0 else "",
                      cell(mine, "within_5pct", ".0%"), cell(mine, "within_10pct", ".0%"),
                      cell(mine, "rmspe_pct", ".1f"), cell(mine, "spearman", ".2f"),
                      cell(mine, "mean_error_pct", "+.1f"), cell(rest, "within_10pct", ".0%"),
                      cell(rest, "rmspe_pct", ".1f"), cell(rest, "spearman", ".2f"),
                      end_section=i == len(report.predictors) - 1)
    console().print(t)


@command("validate", "compare predicted with measured latency on real models", _validate_args)
def run_validate(args: argparse.Namespace) -> int:
    if args.passes < 1:  # before the heavy imports
        raise InputSpecError(f"--passes must be a positive integer, got {args.passes}")
    from latency_lab.validate import DEFAULT_PREDICTORS, validate, write_report

    def models():
        for spec in args.model:
            model, _ = load_model_from_args(args, spec)
            yield spec, model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownOpWarning)  # listed below instead
        report = validate(models(), args.profile, tuple(args.predictor or DEFAULT_PREDICTORS),
                          passes=args.passes, allow_unknown=args.allow_unknown,
                          per_layer=args.per_layer, on_kernels=lambda n: console(
                              stderr=True).print(f"timing {n} distinct kernel(s) alone",
                                                 markup=False, highlight=False))
    for row in report.results:
        if row.skipped:
            warn(f"{row.name}: skipped {len(row.skipped)} with no latency model: "
                 + "; ".join(row.skipped))
    render_validation(report)
    if args.per_layer:
        render_per_kernel(report)
    if args.report:
        for path in write_report(report, args.report):
            console(stderr=True).print(f"wrote {path}", markup=False, highlight=False)
    return 0


# ---------------------------------------------------------------------- shrink


def _shrink_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="MODEL",
                   help="a .keras/.h5 file or keras.applications.NAME (needs --data); "
                        "default: the --network built for the data")
    p.add_argument("--network", default="cnn", choices=["cnn", "vit"],
                   help="the built-in network when no --model: a small CNN (default) or "
                        "a small ViT (attention heads and MLP units are pruned)")
    p.add_argument("--data", metavar="DATA.npz",
                   help="x_train, y_train, x_val, y_val (class indices); default: "
                        "scikit-learn's digits up-sampled to 32x32")
    p.add_argument("--input-shape", metavar="H,W,C", help="with --model keras.applications.NAME")
    p.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE")
    add_import_args(p)
    p.add_argument("--profile", help="profile JSON path or shipped name; default: profile "
                                     "this machine now (--quick plan) into OUT/profile.json")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-ms", type=float, metavar="MS",
                        help="latency target per inference")
    target.add_argument("--target-fraction", type=float, metavar="F",
                        help="target as a fraction of the full model's predicted latency "
                             "(default 0.5)")
    from latency_lab.workflows.config import ALGORITHMS

    p.add_argument("--algorithm", default=None, choices=ALGORITHMS,
                   help="the regularizer: BN |gamma| (the default, but group_lasso for "
                        "--network vit), kernel norms, or logistic_sigmoid gates "
                        "(trained, then left out of the slim model)")
    p.add_argument("--retrain-from", default="pretrained", choices=["pretrained", "learned"],
                   help="weights the slim model starts its retraining from (default: the "
                        "pretrained ones, before the regularizer shrank them)")
    p.add_argument("--pretrain-epochs", type=int, default=6, metavar="N")
    p.add_argument("--learn-epochs", type=int, default=8, metavar="N")
    p.add_argument("--retrain-epochs", type=int, default=6, metavar="N")
    p.add_argument("--align", type=_positive_int, default=1, metavar="N",
                   help="round channel counts up to multiples of N")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the uniformly width-scaled baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/shrink", metavar="DIR",
                   help="report, plots, structures and slim.keras go here")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _shrink_inputs(args: argparse.Namespace):
    """(model, task) from --model/--data, with clear errors for combinations."""
    from latency_lab.errors import InputSpecError
    from latency_lab.workflows import BUILTIN_NETWORKS, digits_task, load_task

    if args.model and args.network != "cnn":
        raise InputSpecError(f"--network {args.network} picks a built-in network; it "
                             "cannot go with --model. Drop one of them")
    if args.model and not args.data:
        raise InputSpecError("--model needs --data DATA.npz (x_train, y_train, x_val, y_val) "
                             "to train it on; omit --model to shrink the built-in CNN on digits")
    if args.imports and not args.model:
        raise InputSpecError("--import loads the custom layers of a --model file; the "
                             "built-in networks need none. Drop --import or give --model")
    task = load_task(args.data) if args.data else digits_task(seed=args.seed)
    if not args.model:
        build, _ = BUILTIN_NETWORKS[args.network]
        return build(task.input_shape, task.classes, seed=args.seed), task
    model, _ = load_model_from_args(args, args.model)
    shape = tuple(int(d) for d in model.input_shape[1:])
    if shape != task.input_shape:
        raise InputSpecError(
            f"model {args.model!r} takes inputs of shape {shape} but {args.data!r} holds "
            f"images of shape {task.input_shape}; resize the data or pass --input-shape.")
    return model, task


@command("shrink", "learn a slim structure for a latency target, rebuild, retrain, "
                   "predict and measure", _shrink_args)
def run_shrink(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from latency_lab.errors import InputSpecError
    from latency_lab.predict import predict_model
    from latency_lab.profile import load_profile

    for name in ("pretrain_epochs", "learn_epochs", "retrain_epochs"):
        if getattr(args, name) < 0:
            raise InputSpecError(f"--{name.replace('_', '-')} must be >= 0, "
                                 f"got {getattr(args, name)}")
    if args.learn_epochs < 1:
        raise InputSpecError("--learn-epochs must be >= 1: the structure is learned then")
    out = Path(args.out)
    err = console(stderr=True)
    model, task = _shrink_inputs(args)
    from latency_lab.workflows import BUILTIN_NETWORKS

    algorithm = args.algorithm or ("gamma" if args.model else BUILTIN_NETWORKS[args.network][1])
    if args.profile:
        prof = load_profile(args.profile)
    else:
        from latency_lab.profiler import ProfileRun, run_profile

        out.mkdir(parents=True, exist_ok=True)
        err.print(f"no --profile: profiling this machine (quick plan) into {out / 'profile.json'}",
                  markup=False, highlight=False)
        prof = run_profile(ProfileRun(out=out / "profile.json", quick=True,
                                      log=lambda m: err.print(m, highlight=False, markup=False)))
    predictor = "lookup" if prof.samples else "roofline"
    full_ms = predict_model(model, prof, predictor).latency_ms
    if args.target_ms is not None:
        if not args.target_ms > 0:
            raise InputSpecError(f"--target-ms must be a positive number, got {args.target_ms}")
        target = args.target_ms
    else:
        frac = 0.5 if args.target_fraction is None else args.target_fraction
        if not 0 < frac < 1:
            raise InputSpecError(f"--target-fraction must be in (0, 1), got {frac}")
        target = frac * full_ms
    err.print(f"shrinking {model.name} ({full_ms:.4f} ms predicted on {prof.device_name}) "
              f"to {target:.4f} ms on {task.name} ({len(task.x_train)} train / "
              f"{len(task.x_val)} val)", markup=False, highlight=False)

    from latency_lab.workflows import shrink

    progress = Progress(TextColumn("{task.description:10s}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} epochs"),
                        TimeElapsedColumn(), console=err, transient=False)
    bars: dict[str, int] = {}

    def on_event(name: str, info: dict) -> None:
        if name == "epoch":
            progress.update(bars[info["phase"]], completed=info["epoch"])
        elif "epochs" in info:
            bars[name] = progress.add_task(name, total=max(info["epochs"], 0))
        elif name in ("snap", "measure"):
            progress.console.print(
                f"{name}: " + (f"learned structure predicted at {info['learned_ms']:.4f} ms"
                               if name == "snap" else "timing " + ", ".join(info["models"])),
                markup=False, highlight=False)
        elif name == "snap_limit":
            progress.console.print(
                f"snap: {info['model']} measured off target, but re-aiming to "
                f"{info['goal_ms']:.4g} ms predicted is below its smallest structure; kept "
                "the last snap", markup=False, highlight=False)

    try:
        with progress:
            result = shrink(model, task, prof, target, algorithm=algorithm,
                            pretrain_epochs=args.pretrain_epochs,
                            learn_epochs=args.learn_epochs,
                            retrain_epochs=args.retrain_epochs, align=args.align,
                            baseline=not args.no_baseline, seed=args.seed, out_dir=out,
                            retrain_from=args.retrain_from, on_event=on_event)
    except ValueError as e:  # regularizer / structure errors name the layer
        raise InputSpecError(str(e)) from e
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    from rich.table import Table

    t = Table(title=f"shrink to {target:.4f} ms ({prof.runtime_name}, "
                    f"{prof.runtime.get('threads')} thread(s), {prof.device_name})")
    for col in ("model", "accuracy", "predicted ms", "measured ms", "vs target", "params"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in result.rows.values():
        vs = "" if r.measured_ms is None else f"{100 * (r.measured_ms / target - 1):+.1f}%"
        meas = "" if r.measured_ms is None else f"{r.measured_ms:.4f}"
        t.add_row(r.name, f"{100 * r.accuracy:.1f}%", f"{r.predicted_ms:.4f}", meas, vs,
                  str(r.params))
    console().print(t)
    for f in result.files:
        err.print(f"wrote {f}", markup=False, highlight=False)
    return 0


# ---------------------------------------------------------------------- main


def _global_args(p: argparse.ArgumentParser, default) -> None:
    p.add_argument("--verbose", action="store_true", default=default,
                   help="show TensorFlow's C++ log lines (hidden by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latency-lab",
        description="Measure a device, predict network latency, train against it.",
    )
    parser.add_argument("--version", action="version", version=f"latency-lab {__version__}")
    _global_args(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_args(p)
        _global_args(p, argparse.SUPPRESS)  # also accepted after the command name
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.time()  # --budget is wall time from here
    parser = build_parser()
    args = parser.parse_args(argv)
    args._started = started
    if not args.verbose:
        quiet_native_logs()
    with warnings.catch_warnings():  # restores showwarning for an in-process caller
        warnings.showwarning = show_warning
        try:
            return int(args._run(args) or 0)
        except LatencyLabError as exc:
            code = getattr(exc, "exit_code", 2)
            if code == 130:
                _say("interrupted:", "bold yellow", str(exc))
            else:
                _say("error:", "bold red", str(exc))
            return code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
