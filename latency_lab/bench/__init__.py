"""What a profile measures, by job: `plans` (which op-kind configurations to time),
`ceilings` (roofline ceilings, overheads and bandwidth curves derived from the
samples) and `calibration` (whole networks measured at the end of a profile). The op
kinds themselves (their microbenchmark programs) live in `latency_lab.op_kinds`."""

__all__ = []
