"""validate's report files: written from a report without measuring anything, and no
matplotlib figure left open behind them."""

import json

from latency_lab.predictors import LayerPrediction
from latency_lab.validate import ModelResult, ValidationReport, write_report


def _report():
    results = [ModelResult(f"net{i}", ms, 0.01, {"lookup": ms * (1 + d), "roofline": ms * 0.8},
                           {"lookup": [LayerPrediction("conv", "Conv2D", ms * 0.6, "compute")]},
                           pass_ms=[ms, ms * 1.02])
               for i, (ms, d) in enumerate([(1.0, 0.05), (2.0, -0.2), (4.0, 0.01)])]
    return ValidationReport("p.json", {"name": "litert", "threads": 1},
                            {"name": "Test CPU", "fingerprint": "x"}, results,
                            ("lookup", "roofline"))


def test_write_report_writes_json_plot_and_markdown_and_leaves_no_figure_open(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    paths = write_report(_report(), tmp_path / "r")
    assert {p.name for p in paths} == {"validation.json", "scatter.png", "worst_layers.md"}
    data = json.loads((tmp_path / "r" / "validation.json").read_text())
    assert [m["name"] for m in data["models"]] == ["net0", "net1", "net2"]
    assert abs(data["models"][1]["error_pct"]["lookup"] + 20.0) < 1e-9
    png = (tmp_path / "r" / "scatter.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "net1" in (tmp_path / "r" / "worst_layers.md").read_text()
    assert plt.get_fignums() == before
