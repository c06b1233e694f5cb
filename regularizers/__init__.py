"""Keras 3 training-time channel regularizers (MorphNet style) built on latency_lab.

    reg = FlopsRegularizer(model=model, algorithm="gamma", threshold=1e-2)
    model.compile(optimizer="adam", loss=reg.wrap_loss("sparse_categorical_crossentropy", 1e-9))
    model.fit(x, y, callbacks=[StructureLogger(reg, log_dir="logs", every_n_steps=500)])
    path = export_structure(reg, "learned_structure", step=final_step)
    slim = apply_structure(model, load_structure(path), align=8)   # then retrain

Any Keras 3 backend (written with keras.ops). Custom loop: ``loss = base_loss + strength *
reg.get_regularization_term()`` inside the gradient computation (under tf.distribute
divide the term by ``num_replicas_in_sync``, e.g. ``tf.nn.scale_regularization_loss``;
JAX's keras.distribution computes one global loss and needs no scaling).
"""

from regularizers.apply import apply_structure, fit_to_target, scale_structure
from regularizers.base import (
    FlopsRegularizer,
    ModelSizeRegularizer,
    NetworkRegularizer,
    RegularizedLoss,
)
from regularizers.callbacks import StrengthController, StructureLogger
from regularizers.grouping import ChannelGraph, build_channel_graph
from regularizers.structure import Structure, export_structure, load_structure

__all__ = [
    "ChannelGraph",
    "FlopsRegularizer",
    "GatedMultiHeadAttention",
    "LatencyRegularizer",
    "ModelSizeRegularizer",
    "NetworkRegularizer",
    "ProbabilisticGate",
    "RegularizedLoss",
    "StrengthController",
    "Structure",
    "StructureLogger",
    "apply_structure",
    "build_channel_graph",
    "export_structure",
    "fit_to_target",
    "insert_gates",
    "load_structure",
    "scale_structure",
]


def __getattr__(name):  # lazy: gates and the latency regularizer live in other modules
    if name in ("ProbabilisticGate", "GatedMultiHeadAttention", "insert_gates", "gate_layers"):
        from regularizers import gates

        return getattr(gates, name)
    if name == "LatencyRegularizer":
        from regularizers.latency import LatencyRegularizer

        return LatencyRegularizer
    raise AttributeError(f"module 'regularizers' has no attribute {name!r}")
