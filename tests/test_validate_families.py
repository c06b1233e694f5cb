"""validate's per-family figures: a report split into its development and held-out
parts, each family's own summary and the leave-one-family-out summary, checked
against hand-computed numbers; nothing is measured."""

import json

import pytest

from latency_lab.errors import LatencyLabError
from latency_lab.validate import ModelResult, ValidationReport, family_breakdown, write_report

# (name, family, measured ms, lookup error): a within 5%, b within 10% only, c 20% over.
ROWS = [("a1", "A", 1.0, 0.02), ("a2", "A", 2.0, -0.04), ("b1", "B", 4.0, 0.08),
        ("c1", "C", 8.0, 0.20), ("c2", "C", 10.0, 0.20)]


def _report(families=True):
    results = [ModelResult(name, ms, 0.0, {"lookup": ms * (1 + err)}) for name, _, ms, err in ROWS]
    return ValidationReport("p.json", {"name": "litert", "threads": 1},
                            {"name": "Test CPU", "fingerprint": "x"}, results, ("lookup",),
                            families={name: fam for name, fam, _, _ in ROWS} if families else {})


def test_each_family_alone_and_left_out():
    out = _report().family_breakdown()
    assert list(out) == ["A", "B", "C"]
    assert out["A"]["models"] == 2 and out["C"]["models"] == 2
    assert out["A"]["alone"]["lookup"]["within_5pct"] == 1.0
    assert out["B"]["alone"]["lookup"]["within_5pct"] == 0.0
    assert out["B"]["alone"]["lookup"]["within_10pct"] == 1.0
    assert out["C"]["alone"]["lookup"]["within_10pct"] == 0.0
    # without C: a1, a2, b1 are all within 10%; without A: 1 of 3
    assert out["C"]["without"]["lookup"]["within_10pct"] == 1.0
    assert out["A"]["without"]["lookup"]["within_10pct"] == pytest.approx(1 / 3)
    assert out["A"]["without"]["lookup"]["models"] == 3
    assert out["C"]["alone"]["lookup"]["mean_error_pct"] == pytest.approx(20.0)
    # two models: no Spearman; without B four models rank in order
    assert out["A"]["alone"]["lookup"]["spearman"] is None
    assert out["B"]["without"]["lookup"]["spearman"] == pytest.approx(1.0)


def test_a_single_family_has_nothing_to_leave_out():
    r = _report()
    out = family_breakdown(r.results[:2], r.families, r.predictors)
    assert out["A"]["without"] == {"lookup": None}


def test_subset_keeps_order_families_and_run_figures():
    r = _report()
    part = r.subset(["c2", "a1"])
    assert [x.name for x in part.results] == ["a1", "c2"]
    assert part.families == {"a1": "A", "c2": "C"}
    assert part.runtime == r.runtime and len(r.results) == 5
    with pytest.raises(LatencyLabError, match="zz"):
        r.subset(["a1", "zz"])


def test_breakdown_needs_every_model_labelled_or_none():
    assert _report(families=False).family_breakdown() == {}
    r = _report()
    del r.families["b1"]
    with pytest.raises(LatencyLabError, match="b1"):
        r.family_breakdown()


def test_report_json_carries_families_and_breakdown(tmp_path):
    write_report(_report(), tmp_path)
    data = json.loads((tmp_path / "validation.json").read_text())
    assert data["families"]["b1"] == "B"
    assert data["family_breakdown"]["C"]["without"]["lookup"]["within_10pct"] == 1.0


def test_family_tables_render(capsys, monkeypatch):
    from latency_lab.cli import render_family_breakdown

    monkeypatch.setenv("COLUMNS", "150")  # rich shortens cells to fit 80 columns

    render_family_breakdown(_report(), "held-out set")
    out = capsys.readouterr().out
    assert "leaving each family out" in out and "held-out set" in out
    assert "100%" in out and "33%" in out and "+20.0" in out
