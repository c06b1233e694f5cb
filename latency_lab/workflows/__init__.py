"""Applications built on the rest of latency_lab. ``shrink``: learn a structure for a
latency target, rebuild and retrain the slim model, predict and measure it beside a
uniformly width-scaled baseline (``latency-lab shrink`` on the command line).

    from latency_lab.workflows import digits_cnn, digits_task, shrink
    task = digits_task()                       # or load_task("data.npz")
    model = digits_cnn(task.input_shape, task.classes)
    result = shrink(model, task, "out/profile.json", target_ms=0.05, out_dir="out/shrink")

Modules: `config` (ShrinkConfig: the settings, checked), `data` (Task, digits, .npz),
`models` (the default CNN, full structures), `training` (the training loop and
accuracy), `phases` (pretrain, baseline, learn, snap, rebuild + retrain, measure, and
`shrink` that runs them), `report` (the result, report.md and figures).

The training-time regularizers (`regularizers`) do not import this package: it sits on
top of them, of the runtimes and timing harness, and of the plots.
"""

from latency_lab.workflows.config import ShrinkConfig
from latency_lab.workflows.data import Task, digits_task, load_task
from latency_lab.workflows.models import BUILTIN_NETWORKS, digits_cnn, digits_vit, full_structure
from latency_lab.workflows.phases import shrink
from latency_lab.workflows.report import ModelRow, ShrinkResult, report_markdown, write_report
from latency_lab.workflows.training import accuracy, train

__all__ = [
    "BUILTIN_NETWORKS",
    "ModelRow",
    "ShrinkConfig",
    "ShrinkResult",
    "Task",
    "accuracy",
    "digits_cnn",
    "digits_task",
    "digits_vit",
    "full_structure",
    "load_task",
    "report_markdown",
    "shrink",
    "train",
    "write_report",
]
