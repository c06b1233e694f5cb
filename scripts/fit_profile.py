"""(Re)compute the fitted lookup models stored in a device profile for fast loads.

The lookup predictor's Gaussian processes take tens of seconds to fit with
hyperparameter optimization on a full profile. This fits them once (the slow path,
ignoring any stored section) and writes their hyperparameters, plain JSON numbers, into
the profile's ``fitted.lookup`` section (atomically), keyed by a digest of the samples,
the roofline, the fit settings, the feature-code version and the scikit-learn version;
a load whose key matches fits with them held fixed and predicts the same. `latency-lab
profile` writes the section at the end of a complete run; run this after upgrading
scikit-learn or changing the lookup features, or for a profile written before.

    .venv/bin/python scripts/fit_profile.py device_profiles/epyc_vm_2c_litert.json
    .venv/bin/python scripts/fit_profile.py --shipped          # every measured shipped profile
    .venv/bin/python scripts/fit_profile.py --check --shipped  # exit 1 if a section is stale

Datasheet profiles (no samples) are skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a plain checkout
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _shipped() -> list[Path]:
    import device_profiles
    from latency_lab.predictors import samples_xy
    from latency_lab.profile import load_profile

    out = []
    for name in device_profiles.available():
        path = device_profiles.path(name)
        if samples_xy(load_profile(path))[0]:
            out.append(path)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profiles", nargs="*", help="profile JSON files to update in place")
    ap.add_argument("--shipped", action="store_true",
                    help="every shipped profile with lookup-table samples")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a profile's stored fit is missing or stale")
    args = ap.parse_args(argv)
    from latency_lab.errors import LatencyLabError
    import warnings

    from latency_lab.errors import SlowFitWarning
    from latency_lab.predictors import LookupTableModel, samples_xy, with_fitted_lookup
    from latency_lab.profile import load_profile

    paths = [Path(p) for p in args.profiles] + (_shipped() if args.shipped else [])
    if not paths:
        ap.error("name profile files, or pass --shipped")
    stale = 0
    try:
        for path in paths:
            prof = load_profile(path)
            if not samples_xy(prof)[0]:
                print(f"{path}: no lookup-table samples (a datasheet profile); skipped")
                continue
            if args.check:
                with warnings.catch_warnings():  # said below, per profile
                    warnings.simplefilter("ignore", SlowFitWarning)
                    fits = LookupTableModel(prof).fit().gp_fits_
                bad = sorted(op for op, how in fits.items() if how != "stored")
                stale += bool(bad)
                print(f"{path}: " + (f"stale or missing for {', '.join(bad)}" if bad
                                     else f"stored fit is current ({len(fits)} models: op kinds and regimes)"))
                continue
            started = time.perf_counter()
            updated = with_fitted_lookup(prof)
            updated.save(path)
            models = updated.fitted["lookup"]["models"]
            print(f"{path}: stored the fitted lookup models of {len(models)} op kinds and regimes "
                  f"({time.perf_counter() - started:.1f} s)")
    except LatencyLabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
