"""scripts/op_sweep.py's held-out draws: every point of a sweep is a distinct
configuration (validate measures models in passes by name, so a repeat was an error)."""

from script_helpers import load_script


def test_heldout_sweeps_draw_distinct_points():
    heldout_sweeps = load_script("op_sweep")._heldout_sweeps
    # seed 13 drew "conv k1 3x3 1->1 s1" twice in conv_channels
    for seed in range(20):
        sweeps = heldout_sweeps(seed, 12)
        for name, points in sweeps.items():
            labels = [label for label, _ in points]
            assert len(labels) == 12 == len(set(labels)), (seed, name, labels)
    again = heldout_sweeps(13, 12)
    assert again == heldout_sweeps(13, 12)  # a fixed draw per seed
