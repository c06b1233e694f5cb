"""latency_lab.convert.pool: conversion work in worker processes (real processes, cheap
tasks), its errors, and that a caller's script is never run again in a worker."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from latency_lab.convert.pool import ConversionPool, default_workers
from latency_lab.errors import MeasurementError
from latency_lab.op_kinds.base import same_out

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool():
    with ConversionPool(2) as p:
        yield p


def test_tasks_run_in_worker_processes_and_come_back_in_order(pool):
    jobs = [(7, 2), (8, 3), (1, 1), (224, 32)]
    assert pool.map(same_out, jobs) == [same_out(*j) for j in jobs] == [4, 3, 1, 7]
    assert len(pool.pids) == 2 and os.getpid() not in pool.pids


def test_a_task_error_is_raised_in_the_caller(pool):
    with pytest.raises(ZeroDivisionError):
        pool.map(same_out, [(4, 0)])
    assert pool.map(same_out, [(9, 4)]) == [3]  # the workers carry on


def test_workers_run_only_functions_of_this_package(pool):
    with pytest.raises(MeasurementError, match="latency_lab functions, not posix.getpid"):
        pool.submit(os.getpid).result()


def test_a_worker_that_dies_fails_its_task_with_a_clear_error():
    with ConversionPool(2) as p:
        p.map(same_out, [(1, 1)] * 2)  # start the workers
        for pid in p.pids:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(MeasurementError, match=r"conversion worker process exited \(code -9\)"):
            p.map(same_out, [(5, 2)])


def test_one_worker_means_this_process():
    p = ConversionPool(1)
    assert not p.parallel and not p.worth_it(10_000)
    assert p.map(same_out, [(10, 3)]) == [4] and p.pids == []
    with pytest.raises(ZeroDivisionError):
        p.submit(same_out, 1, 0).result()


def test_workers_start_only_for_enough_tasks():
    p = ConversionPool(2)
    assert not p.worth_it(3) and p.worth_it(1000)
    assert 1 <= default_workers() <= 4


@pytest.mark.parametrize("workers", [-1, 1.5, True, "2"])
def test_bad_worker_counts(workers):
    with pytest.raises(MeasurementError, match="conversion workers must be an integer"):
        ConversionPool(workers)


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path):
    """multiprocessing's spawn would import the caller's script in each worker (and
    start the pool again from there); these workers run the package only."""
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent("""
        from latency_lab.convert.pool import ConversionPool
        from latency_lab.op_kinds.base import same_out
        print("script ran")
        with ConversionPool(2) as p:
            print(p.map(same_out, [(7, 2), (3, 3)]))
    """))
    got = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert got.returncode == 0, got.stderr
    assert got.stdout.split("\n")[:2] == ["script ran", "[4, 1]"]
