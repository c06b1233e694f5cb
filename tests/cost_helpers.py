"""Shared checks of the cost tests: exact cost tuples, and TensorFlow's own count of
float operations per op type (tf.compat.v1.profiler) for a frozen graph."""

import collections

import pytest


def assert_cost(cost, flops, params, bytes_read, bytes_written):
    assert (cost.flops, cost.params, cost.bytes_read, cost.bytes_written) == (
        pytest.approx(flops, rel=1e-12, abs=0),
        pytest.approx(params, rel=1e-12, abs=0),
        pytest.approx(bytes_read, rel=1e-12, abs=0),
        pytest.approx(bytes_written, rel=1e-12, abs=0),
    )


def tf_float_ops_by_type(graph) -> collections.Counter:
    """Float operations per op type of `graph`, as tf.compat.v1.profiler counts them."""
    import tensorflow as tf

    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(
        graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="scope", options=opts)
    node_type = {op.name: op.type for op in graph.get_operations()}
    by_type = collections.Counter()
    stack = [prof]
    while stack:
        node = stack.pop()
        if node.float_ops and node.name in node_type:
            by_type[node_type[node.name]] += node.float_ops
        stack.extend(node.children)
    return by_type
