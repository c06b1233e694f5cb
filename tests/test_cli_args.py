"""The CLI's global behaviour, each case in a fresh interpreter: argument errors are
reported before TensorFlow is imported, and TensorFlow's native start-up lines are
hidden unless --verbose."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd, extra_env=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


MAIN = ("import sys\nfrom latency_lab import cli\ncode = cli.main({argv!r})\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, code)\n")


@pytest.mark.parametrize("argv", [
    ["profile", "--out", "existing.json"],
    ["profile", "--out", "new.json", "--threads", "100000"],
    ["profile", "--out", "new.json", "--budget", "0"],
    ["profile", "--out", "no/such/dir/p.json"],
    ["measure", "m.keras", "--threads", "100000"],
    ["validate", "--profile", "t4", "m.keras", "--passes", "0"],
    ["predict", "m.keras", "--profile", "t4", "--measure-missing"],
    ["profile", "--out", "new.json", "--extend-for", "m.keras"],
    ["profile", "--out", "existing.json", "--extend-for", "m.keras", "--overwrite"],
    ["profile", "--out", "new.json", "--import", "my_layers"],
    ["analyze", "m.keras", "--import", "layers/my_layers.py"],
    ["measure", "m.keras", "--import", "no_such_module_of_latency_lab_tests"],
])
def test_argument_errors_come_before_tensorflow(tmp_path, argv):
    (tmp_path / "existing.json").write_text("{}")
    got = run_python(MAIN.format(argv=argv), tmp_path)
    assert got.stdout.split() == ["False", "False", "2"], got.stderr
    assert "error:" in got.stderr and "Traceback" not in got.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.json"]


QUIET = ("from latency_lab import cli\n{call}\nimport tensorflow\n"
         "tensorflow.config.list_physical_devices('GPU')\n"
         "import sys\nprint('visible', file=sys.stderr)\n")


def test_tensorflow_start_up_lines_are_hidden_unless_verbose(tmp_path):
    got = run_python(QUIET.format(call="cli.quiet_native_logs()"), tmp_path)
    assert got.returncode == 0, got.stderr
    assert "Could not find cuda drivers" not in got.stderr
    assert "absl::InitializeLog" not in got.stderr
    assert "cuInit" not in got.stderr  # logged when devices are first looked for
    assert "visible" in got.stderr  # stderr works again after the import


def test_a_command_without_verbose_leaves_stderr_clean(tmp_path):
    """End to end: a command that builds and walks a Keras model prints nothing on
    stderr; with --verbose TensorFlow's native lines are there."""
    argv = ["analyze", "keras.applications.MobileNet", "--input-shape", "32,32,3",
            "--model-arg", "alpha=0.25", "--json"]
    quiet = run_python(MAIN.format(argv=argv), tmp_path)
    assert quiet.returncode == 0 and quiet.stdout.split()[-1] == "0", quiet.stderr
    assert quiet.stderr == ""
    loud = run_python(MAIN.format(argv=["--verbose"] + argv), tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert re.search(r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ", loud.stderr, re.M)


def test_verbose_is_a_global_flag_in_either_place():
    from latency_lab import cli

    parse = cli.build_parser().parse_args
    assert parse(["--verbose", "show", "t4"]).verbose is True
    assert parse(["show", "t4", "--verbose"]).verbose is True
    assert parse(["show", "t4"]).verbose is False


def test_warnings_are_printed_as_the_cli_prints_its_own(monkeypatch, capsys):
    """A library warning reaches the user as 'warning: ...', not in Python's
    '/path/file.py:123: SlowFitWarning: ...' form; another package's keeps its category
    name; the caller's showwarning is back afterwards."""
    import warnings

    from latency_lab import cli
    from latency_lab.errors import SlowFitWarning

    def run(args):
        warnings.warn(SlowFitWarning("the stored fit is stale; run scripts/fit_profile.py"))
        warnings.warn("keras said so", DeprecationWarning)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "warnme",
                        cli.Command("warnme", "emit warnings", lambda p: None, run))
    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main(["warnme"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "warning: the stored fit is stale; run scripts/fit_profile.py",
        "warning: DeprecationWarning: keras said so"]
    assert warnings.showwarning is before
