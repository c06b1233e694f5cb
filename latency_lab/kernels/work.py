"""WorkItem: one kernel a runtime runs, in the form the predictors take."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from latency_lab import costs, op_kinds

__all__ = ["WorkItem", "WorkItems", "unknown", "working_set_bytes"]


@dataclass
class WorkItem:
    """One kernel: timed through `configs` (op-kind samples) or, when None, through
    the roofline with `flops`/`bytes` of class `op_class`."""

    layer: str
    layer_type: str
    configs: list | None
    flops: float = 0.0
    bytes: float = 0.0
    op_class: str = costs.ELEMENTWISE
    kernel: str = ""

    @property
    def weight_bytes(self) -> float:
        if not self.configs:
            return 0.0
        return float(sum(op_kinds.weight_bytes(op, cfg) for op, cfg in self.configs))

    @property
    def output_bytes(self) -> float:
        """float32 bytes the kernel writes: its last config's output (a k-way concat,
        timed as pairwise copies, writes the whole output once); for a roofline-charged
        kernel, half its bytes."""
        if not self.configs:
            return self.bytes / 2.0
        op, cfg = self.configs[-1]
        return float(op_kinds.work(op, cfg).bytes_written)

    def scaled(self, alive_in: float, alive_out: float) -> "WorkItem":
        """The kernel with its layer's input/output channels scaled by these alive
        fractions (`OpKind.scale`); a roofline-charged kernel scales with its output."""
        if self.configs is None:
            return dataclasses.replace(self, flops=self.flops * alive_out,
                                       bytes=self.bytes * alive_out)
        return dataclasses.replace(self, configs=[
            (op, op_kinds.get(op).scale(cfg, alive_in, alive_out)) for op, cfg in self.configs])

    def to_dict(self) -> dict:
        """JSON form stored in a profile's calibration section."""
        if self.configs is not None:
            return {"configs": [[op, cfg] for op, cfg in self.configs]}
        return {"flops": self.flops, "bytes": self.bytes, "op_class": self.op_class}

    @classmethod
    def from_dict(cls, d: dict) -> "WorkItem":
        if "configs" in d:
            return cls("", "", [(op, dict(cfg)) for op, cfg in d["configs"]])
        return cls("", "", None, float(d["flops"]), float(d["bytes"]), str(d["op_class"]))


def working_set_bytes(items) -> float:
    """Bytes a network touches between two uses of any one kernel's weights: every
    weight, and every activation it writes. A kernel's weights come back from the
    memory level a working set of this size lives in (`LookupTableModel.
    _fit_in_network`), not from one of the weights' size alone. Xeon VM (L2 1.25 MB
    per core, an L3 shared with other tenants), profile fresh17: every calibration
    network ran 1.1-1.9x its kernels' predicted sum, the larger ones by about their
    weights read at DRAM speed (MobileNetV2-0.75 at 112 px: 10.0 MB of weights and
    5.9 MB of activations, 0.91 ms over its kernels; 10 MB at 12 GB/s is 0.87 ms),
    while chains of kernels with 16 KB of weights each ran at 0.78-1.19x theirs. Its
    weights alone sit at 23 GB/s on the profile's curve, weights and activations at
    16 GB/s."""
    return float(sum(item.weight_bytes + item.output_bytes for item in items))


class WorkItems(list):
    """The kernels of a network; `skipped` names the layers left out because they have
    no latency model and the caller allowed that (`allow_unknown`)."""

    def __init__(self, items=(), skipped=()):
        super().__init__(items)
        self.skipped: list[str] = list(skipped)


def unknown(items: WorkItems, what: str, error: Exception, allow_unknown: bool) -> None:
    """The one failure policy for a layer or kernel with no latency model: the error
    (which names it), or, with `allow_unknown`, a warning and an entry in
    `items.skipped`."""
    if not allow_unknown:
        raise error
    import warnings

    from latency_lab.errors import UnknownOpWarning

    items.skipped.append(what)
    warnings.warn(UnknownOpWarning(f"skipped {what}: {error}"), stacklevel=3)
