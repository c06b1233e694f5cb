"""Write latency_lab/bench/harvested_families.json: the kernels LiteRT runs for each
planned keras.applications family (`plans.family_configs`), with the TensorFlow and
Keras versions that made them. Profiles made with those versions read it instead of
converting the families again.

    python scripts/harvest_families.py            # write it
    python scripts/harvest_families.py --check    # exit 1 if it is not current
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def harvest() -> dict:
    from latency_lab.bench import plans
    from latency_lab.convert.pool import ConversionPool

    families = list(dict.fromkeys(
        (name, json.dumps(kw, sort_keys=True)) for name, kw in
        plans.QUICK_FAMILIES + plans.FULL_FAMILIES))
    builds = [(name, json.loads(kw)) for name, kw in families]
    with ConversionPool() as pool:
        configs = pool.map(plans.family_configs, [(n, kw, "litert") for n, kw in builds])
    return {"runtime": "litert", "versions": plans.harvest_versions(),
            "families": {plans.family_label(n, kw): [[op, cfg] for op, cfg in got]
                         for (n, kw), got in zip(builds, configs)}}


def _dumps(data: dict) -> str:
    """JSON with one kernel config per line (readable diffs when a version changes)."""
    def one(obj) -> str:
        return json.dumps(obj, sort_keys=True)

    families = ",\n".join(
        f"  {one(label)}: [\n" + ",\n".join(f"    {one(entry)}" for entry in configs) + "\n  ]"
        for label, configs in sorted(data["families"].items()))
    return (f'{{\n "runtime": {one(data["runtime"])},\n "versions": {one(data["versions"])},\n'
            f' "families": {{\n{families}\n }}\n}}\n')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args()
    from latency_lab.bench import plans

    data = json.loads(json.dumps(harvest()))  # as it reads back (tuples are lists)
    path = plans.HARVESTED_FAMILIES
    if args.check:
        current = json.loads(path.read_text()) if path.exists() else None
        print(f"{path}: {'current' if current == data else 'NOT current'}")
        return 0 if current == data else 1
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".harvest-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(_dumps(data))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print(f"wrote {path}: {len(data['families'])} families, versions {data['versions']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
