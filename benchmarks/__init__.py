"""CPU benchmarks of deepfake-detect (see README in RESULTS.md); run all with ``python -m benchmarks``."""
