# Developer shortcuts. `make test`: the fast test suite; `make bench`: the CPU benchmarks (minutes; they
# append their figures to benchmarks/RESULTS.md); `make bench-quick`: the benchmarks on tiny inputs.
PYTHON ?= python

.PHONY: test test-all bench bench-quick

test:
	$(PYTHON) -m pytest -q -m "not slow and not browser"

test-all:
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) -m benchmarks

bench-quick:
	$(PYTHON) -m benchmarks --quick
