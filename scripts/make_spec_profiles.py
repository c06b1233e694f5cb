"""Generate the spec (datasheet) device profiles in device_profiles/.

This table is the one place the shipped spec numbers live; the JSON files are its
output. Edit SPECS, then run:

    .venv/bin/python scripts/make_spec_profiles.py            # writes device_profiles/*.json
    .venv/bin/python scripts/make_spec_profiles.py --check    # exit 1 if files are stale

Units: FLOP/s and bytes/s (decimal: 1 GB/s = 1e9 B/s, 1 TFLOP/s = 1e12 FLOP/s).

MorphNet's table (morph_net/network_regularizers/resource_function.py) reads, in
GFLOP/s and GB/s:
    PEAK_COMPUTE     K80 8740, P4 5500, T4 8100, P100 9300, V100 125000, TPUv2 22500
    MEMORY_BANDWIDTH K80 480,  P4 192,  T4 300,  P100 732,  V100 900,    TPUv2 300
Those numbers are reproduced unchanged in k80/p4/t4/p100/v100/tpuv2.json. They mix
precisions: V100's 125000 is the tensor-core (FP16 multiply, FP32 accumulate) figure,
TPUv2's 22500 is bfloat16 per TensorCore, the rest are FP32. v100_fp32.json is the
V100 at its FP32 datasheet figure for float32 models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a plain checkout
    sys.path.insert(0, str(ROOT))

from latency_lab.profile import DeviceProfile  # noqa: E402

OUT_DIR = ROOT / "device_profiles"
# Fixed so regenerating gives byte-identical files; bump when the table changes.
CREATED_UTC = "2026-11-25T00:00:00Z"

T = 1e12  # TFLOP/s -> FLOP/s
G = 1e9   # GB/s or GFLOP/s -> per second

MORPHNET_CITATION = ("MorphNet, morph_net/network_regularizers/resource_function.py, "
                     "PEAK_COMPUTE (GFLOP/s) and MEMORY_BANDWIDTH (GB/s) tables")
MORPHNET_URL = ("https://github.com/google-research/morph-net/blob/master/"
                "morph_net/network_regularizers/resource_function.py")

K80_DS = ("NVIDIA Tesla K80 GPU accelerator overview (datasheet)",
          "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/"
          "tesla-product-literature/nvidia-tesla-k80-overview.pdf")
P4_DS = ("NVIDIA Tesla P4 inferencing accelerator datasheet",
         "https://images.nvidia.com/content/pdf/tesla/"
         "184457-Tesla-P4-Datasheet-NV-Final-Letter-Web.pdf")
T4_DS = ("NVIDIA T4 Tensor Core GPU datasheet",
         "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/"
         "t4-tensor-core-datasheet.pdf")
P100_DS = ("NVIDIA Tesla P100 PCIe datasheet",
           "https://images.nvidia.com/content/tesla/pdf/nvidia-tesla-p100-PCIe-datasheet.pdf")
V100_DS = ("NVIDIA Tesla V100 GPU accelerator datasheet",
           "https://images.nvidia.com/content/technologies/volta/pdf/"
           "tesla-volta-v100-datasheet-letter-fnl-web.pdf")
TPUV2_DS = ("Jeff Dean, 'Machine Learning for Systems and Systems for Machine Learning', "
            "NIPS 2017 ML Systems workshop slides (TPUv2)",
            "http://learningsys.org/nips17/assets/slides/dean-nips17.pdf")
A100_DS = ("NVIDIA A100 Tensor Core GPU datasheet",
           "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
           "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf")
H100_DS = ("NVIDIA H100 Tensor Core GPU (product page and datasheet specifications table)",
           "https://www.nvidia.com/en-us/data-center/h100/")
H100_WP = ("NVIDIA H100 Tensor Core GPU Architecture whitepaper (dense tensor-core peaks)",
           "https://resources.nvidia.com/en-us-tensor-core/gtc22-whitepaper-hopper")
L4_DS = ("NVIDIA L4 Tensor Core GPU (product page and datasheet specifications table)",
         "https://www.nvidia.com/en-us/data-center/l4/")
TPUV4_DOC = ("Google Cloud TPU documentation: TPU v4", "https://cloud.google.com/tpu/docs/v4")
TPUV5E_DOC = ("Google Cloud TPU documentation: TPU v5e",
              "https://cloud.google.com/tpu/docs/v5e")

SAME_PEAK_NOTE = ("The datasheet gives one compute figure, so dense, depthwise and "
                  "elementwise ops share the same ceiling here; real depthwise and "
                  "elementwise throughput is far lower. Datasheets give no per-op or "
                  "per-invocation overhead, so both are 0 (meaning unknown, not free). "
                  "Measure the device (`latency-lab profile`) for realistic numbers.")


def _src(quantity, value, unit, precision, doc, note=None):
    citation, url = doc
    if note:
        citation = f"{citation}; {note}"
    out = {"quantity": quantity, "value": value, "unit": unit}
    if precision is not None:
        out["precision"] = precision
    out.update(citation=citation, url=url)
    return out


def _flops(value, precision, doc, note=None):
    return _src("peak_flops_per_s", value, "FLOP/s", precision, doc, note)


def _mem(value, doc, note=None):
    return _src("memory_bytes_per_s", value, "B/s", None, doc, note)


def _morphnet(key):
    doc = (f"{MORPHNET_CITATION}, entry '{key}'", MORPHNET_URL)
    return doc


# name -> spec. The roofline uses peak_flops_per_s (all op classes) and
# memory_bytes_per_s; `sources` lists those two first, then other precisions a user may
# pick instead.
SPECS: dict[str, dict] = {
    # --- MorphNet's devices, MorphNet's numbers ------------------------------------
    "k80": {
        "device_name": "NVIDIA Tesla K80",
        "kind": "gpu",
        "peak_flops_per_s": 8740 * G,
        "memory_bytes_per_s": 480 * G,
        "precision": "fp32",
        "info": {"morphnet_key": "K80", "gpus_per_board": 2, "memory": "24 GB GDDR5"},
        "sources": [
            _flops(8740 * G, "fp32", _morphnet("K80")),
            _mem(480 * G, _morphnet("K80")),
            _flops(8.73 * T, "fp32 (with GPU Boost, whole board)", K80_DS),
            _mem(480 * G, K80_DS, "aggregate of the board's two GPUs (2 x 240 GB/s)"),
        ],
        "notes": ("MorphNet's K80 entry (8740 GFLOP/s FP32, 480 GB/s). These are whole-board "
                  "figures: a K80 carries two GK210 GPUs and the datasheet quotes 8.73 "
                  "TFLOP/s FP32 with GPU Boost and 480 GB/s aggregate; one TensorFlow "
                  "device sees about half of each. " + SAME_PEAK_NOTE),
    },
    "p4": {
        "device_name": "NVIDIA Tesla P4",
        "kind": "gpu",
        "peak_flops_per_s": 5500 * G,
        "memory_bytes_per_s": 192 * G,
        "precision": "fp32",
        "info": {"morphnet_key": "P4", "memory": "8 GB GDDR5"},
        "sources": [
            _flops(5500 * G, "fp32", _morphnet("P4")),
            _mem(192 * G, _morphnet("P4")),
            _flops(5.5 * T, "fp32", P4_DS),
            _src("peak_ops_per_s", 22 * T, "OP/s", "int8", P4_DS),
            _mem(192 * G, P4_DS),
        ],
        "notes": "MorphNet's P4 entry (5500 GFLOP/s FP32, 192 GB/s). " + SAME_PEAK_NOTE,
    },
    "t4": {
        "device_name": "NVIDIA T4",
        "kind": "gpu",
        "peak_flops_per_s": 8100 * G,
        "memory_bytes_per_s": 300 * G,
        "precision": "fp32",
        "info": {"morphnet_key": "T4", "memory": "16 GB GDDR6"},
        "sources": [
            _flops(8100 * G, "fp32", _morphnet("T4")),
            _mem(300 * G, _morphnet("T4")),
            _flops(8.1 * T, "fp32", T4_DS),
            _flops(65 * T, "fp16 tensor core (mixed precision, fp32 accumulate)", T4_DS),
            _src("peak_ops_per_s", 130 * T, "OP/s", "int8 tensor core", T4_DS),
            _mem(320 * G, T4_DS, "datasheet says '320+ GB/s'"),
        ],
        "notes": ("MorphNet's T4 entry (8100 GFLOP/s FP32, 300 GB/s). The T4 datasheet "
                  "gives 320+ GB/s; MorphNet's 300 GB/s is kept so this profile reproduces "
                  "MorphNet. " + SAME_PEAK_NOTE),
    },
    "p100": {
        "device_name": "NVIDIA Tesla P100 PCIe 16 GB",
        "kind": "gpu",
        "peak_flops_per_s": 9300 * G,
        "memory_bytes_per_s": 732 * G,
        "precision": "fp32",
        "info": {"morphnet_key": "P100", "form_factor": "PCIe", "memory": "16 GB HBM2"},
        "sources": [
            _flops(9300 * G, "fp32", _morphnet("P100")),
            _mem(732 * G, _morphnet("P100")),
            _flops(9.3 * T, "fp32", P100_DS),
            _flops(18.7 * T, "fp16", P100_DS),
            _mem(732 * G, P100_DS, "16 GB model (the 12 GB model has 549 GB/s)"),
        ],
        "notes": ("MorphNet's P100 entry (9300 GFLOP/s FP32, 732 GB/s) is the PCIe 16 GB "
                  "card; the SXM2 (NVLink) P100 is faster (10.6 TFLOP/s FP32). "
                  + SAME_PEAK_NOTE),
    },
    "v100": {
        "device_name": "NVIDIA Tesla V100 SXM2",
        "kind": "gpu",
        "peak_flops_per_s": 125000 * G,
        "memory_bytes_per_s": 900 * G,
        "precision": "fp16 tensor core (mixed precision, fp32 accumulate)",
        "info": {"morphnet_key": "V100", "form_factor": "SXM2", "memory": "16/32 GB HBM2"},
        "sources": [
            _flops(125000 * G, "fp16 tensor core (mixed precision, fp32 accumulate)",
                   _morphnet("V100")),
            _mem(900 * G, _morphnet("V100")),
            _flops(125 * T, "fp16 tensor core (mixed precision, fp32 accumulate)", V100_DS),
            _flops(15.7 * T, "fp32", V100_DS),
            _mem(900 * G, V100_DS),
        ],
        "notes": ("MorphNet's V100 entry: 125000 GFLOP/s is the SXM2 tensor-core figure "
                  "(FP16 multiply, FP32 accumulate), not FP32 like MorphNet's other GPU "
                  "entries, so a float32 model will be predicted about 8x too fast. Use "
                  "'v100_fp32' (15.7 TFLOP/s) for float32 models. " + SAME_PEAK_NOTE),
    },
    "tpuv2": {
        "device_name": "Google TPU v2 (one TensorCore)",
        "kind": "tpu",
        "peak_flops_per_s": 22500 * G,
        "memory_bytes_per_s": 300 * G,
        "precision": "bf16 (MXU; bfloat16 multiply, fp32 accumulate)",
        "info": {"morphnet_key": "TPUv2", "unit": "one TensorCore (half a chip)"},
        "sources": [
            _flops(22500 * G, "bf16", _morphnet("TPUv2")),
            _mem(300 * G, _morphnet("TPUv2")),
            _flops(180 * T, "bf16", TPUV2_DS,
                   "180 TFLOP/s for a Cloud TPU v2 device: 4 chips, 8 TensorCores"),
            _mem(2400 * G, TPUV2_DS, "2400 GB/s for the same 4-chip device"),
        ],
        "notes": ("MorphNet's TPUv2 entry (22500 GFLOP/s, 300 GB/s) is 1/8 of the figures "
                  "quoted for a 4-chip, 8-core Cloud TPU v2 device (180 TFLOP/s, 2400 GB/s), "
                  "i.e. per TensorCore; the MXU computes in bfloat16. " + SAME_PEAK_NOTE),
    },
    "v100_fp32": {
        "device_name": "NVIDIA Tesla V100 SXM2",
        "kind": "gpu",
        "peak_flops_per_s": 15.7 * T,
        "memory_bytes_per_s": 900 * G,
        "precision": "fp32",
        "info": {"form_factor": "SXM2", "memory": "16/32 GB HBM2"},
        "sources": [
            _flops(15.7 * T, "fp32", V100_DS),
            _mem(900 * G, V100_DS),
            _flops(125 * T, "fp16 tensor core (mixed precision, fp32 accumulate)", V100_DS),
            _flops(7.8 * T, "fp64", V100_DS),
        ],
        "notes": ("V100 SXM2 at its FP32 datasheet peak, for float32 models (MorphNet's "
                  "'V100' entry, in v100.json, is the tensor-core figure). The PCIe card is "
                  "slower (14 TFLOP/s FP32). " + SAME_PEAK_NOTE),
    },
    # --- current devices, public datasheets -------------------------------------
    "a100": {
        "device_name": "NVIDIA A100 SXM4 80GB",
        "kind": "gpu",
        "peak_flops_per_s": 19.5 * T,
        "memory_bytes_per_s": 2039 * G,
        "precision": "fp32",
        "info": {"form_factor": "SXM4", "memory": "80 GB HBM2e"},
        "sources": [
            _flops(19.5 * T, "fp32", A100_DS),
            _mem(2039 * G, A100_DS, "A100 80GB SXM (the 40 GB model has 1555 GB/s)"),
            _flops(156 * T, "tf32 tensor core, dense (312 with sparsity)", A100_DS),
            _flops(312 * T, "bf16 tensor core, dense (624 with sparsity)", A100_DS),
            _flops(312 * T, "fp16 tensor core, dense (624 with sparsity)", A100_DS),
            _flops(9.7 * T, "fp64", A100_DS),
        ],
        "notes": ("A100 SXM 80GB, FP32 (non-tensor-core) peak for float32 models. Note "
                  "that TensorFlow and JAX may run float32 matmuls/convolutions as TF32 on "
                  "Ampere tensor cores (156 TFLOP/s); pick that source if yours does. "
                  + SAME_PEAK_NOTE),
    },
    "h100": {
        "device_name": "NVIDIA H100 SXM5 80GB",
        "kind": "gpu",
        "peak_flops_per_s": 67 * T,
        "memory_bytes_per_s": 3350 * G,
        "precision": "fp32",
        "info": {"form_factor": "SXM5", "memory": "80 GB HBM3"},
        "sources": [
            _flops(67 * T, "fp32", H100_DS),
            _mem(3350 * G, H100_DS, "3.35 TB/s"),
            _flops(494.7 * T, "tf32 tensor core, dense", H100_WP,
                   "the datasheet lists 989 TFLOP/s, which is with sparsity"),
            _flops(989.4 * T, "bf16 tensor core, dense", H100_WP,
                   "the datasheet lists 1979 TFLOP/s, which is with sparsity"),
            _flops(989.4 * T, "fp16 tensor core, dense", H100_WP,
                   "the datasheet lists 1979 TFLOP/s, which is with sparsity"),
            _flops(34 * T, "fp64", H100_DS),
        ],
        "notes": ("H100 SXM, FP32 (non-tensor-core) peak for float32 models. Datasheet "
                  "tensor-core figures are quoted with 2:4 sparsity; the dense values "
                  "recorded here are half of them. " + SAME_PEAK_NOTE),
    },
    "l4": {
        "device_name": "NVIDIA L4",
        "kind": "gpu",
        "peak_flops_per_s": 30.3 * T,
        "memory_bytes_per_s": 300 * G,
        "precision": "fp32",
        "info": {"form_factor": "PCIe low profile", "memory": "24 GB GDDR6"},
        "sources": [
            _flops(30.3 * T, "fp32", L4_DS),
            _mem(300 * G, L4_DS),
            _flops(60 * T, "tf32 tensor core, dense", L4_DS,
                   "the datasheet lists 120 TFLOP/s, which is with sparsity"),
            _flops(121 * T, "fp16 tensor core, dense", L4_DS,
                   "the datasheet lists 242 TFLOP/s, which is with sparsity"),
            _flops(121 * T, "bf16 tensor core, dense", L4_DS,
                   "the datasheet lists 242 TFLOP/s, which is with sparsity"),
        ],
        "notes": ("L4, FP32 (non-tensor-core) peak for float32 models. Datasheet "
                  "tensor-core figures are quoted with sparsity; dense values recorded here "
                  "are half of them. " + SAME_PEAK_NOTE),
    },
    "tpu_v4": {
        "device_name": "Google Cloud TPU v4 (one chip, 2 TensorCores)",
        "kind": "tpu",
        "peak_flops_per_s": 275 * T,
        "memory_bytes_per_s": 1200 * G,
        "precision": "bf16",
        "info": {"unit": "one chip (2 TensorCores, megacore)", "memory": "32 GiB HBM2"},
        "sources": [
            _flops(275 * T, "bf16", TPUV4_DOC, "peak compute per chip"),
            _mem(1200 * G, TPUV4_DOC, "HBM2 bandwidth per chip"),
            _src("peak_ops_per_s", 275 * T, "OP/s", "int8", TPUV4_DOC),
        ],
        "notes": ("Per chip. bfloat16 is the MXU's native matmul precision; XLA runs float32 "
                  "matmuls/convolutions as bfloat16 passes at the default precision, so a "
                  "float32 model sees roughly this ceiling (a 'highest' precision setting "
                  "is several times slower). " + SAME_PEAK_NOTE),
    },
    "tpu_v5e": {
        "device_name": "Google Cloud TPU v5e (one chip)",
        "kind": "tpu",
        "peak_flops_per_s": 197 * T,
        "memory_bytes_per_s": 819 * G,
        "precision": "bf16",
        "info": {"unit": "one chip (1 TensorCore)", "memory": "16 GB HBM2"},
        "sources": [
            _flops(197 * T, "bf16", TPUV5E_DOC, "peak compute per chip"),
            _mem(819 * G, TPUV5E_DOC, "HBM2 bandwidth per chip, '16 GB, 819 GBps'"),
            _src("peak_ops_per_s", 393 * T, "OP/s", "int8", TPUV5E_DOC),
        ],
        "notes": ("Per chip. The chip-specification table gives 819 GBps; a later revision "
                  "of the same page writes '800 GiBps' (about 859 GB/s); 819 GB/s is used. "
                  "bfloat16 is the MXU's native matmul precision; XLA runs float32 "
                  "matmuls/convolutions as bfloat16 passes at the default precision. "
                  + SAME_PEAK_NOTE),
    },
}


def build(name: str) -> DeviceProfile:
    """The DeviceProfile for SPECS[name]."""
    spec = SPECS[name]
    peak = float(spec["peak_flops_per_s"])
    return DeviceProfile.create(
        device={"kind": spec["kind"], "name": spec["device_name"], "fingerprint": None,
                "info": dict(spec["info"])},
        runtime={"name": "spec", "version": None, "backend": None, "device": None,
                 "threads": None, "dtype": "float32", "batch": 1},
        provenance={"kind": "spec", "sources": [dict(s) for s in spec["sources"]],
                    "notes": spec["notes"]},
        roofline={"compute_flops_per_s": {"dense": peak, "depthwise": peak,
                                          "elementwise": peak},
                  "memory_bytes_per_s": float(spec["memory_bytes_per_s"]),
                  "precision": spec["precision"]},
        overhead={"per_op_ms": 0.0, "per_invocation_ms": 0.0},
        created_utc=CREATED_UTC,
        source=f"scripts/make_spec_profiles.py:{name}",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help="output directory (default: device_profiles/)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if any file differs from the table")
    args = parser.parse_args(argv)
    stale = []
    for name in sorted(SPECS):
        profile = build(name)
        target = args.out / f"{name}.json"
        if args.check:
            try:
                current = json.loads(target.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                current = None
            if current != profile.to_dict():
                stale.append(str(target))
            continue
        profile.save(target)
        print(f"wrote {target}")
    if stale:
        print("stale (re-run scripts/make_spec_profiles.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
