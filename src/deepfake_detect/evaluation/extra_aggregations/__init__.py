"""More video-level aggregation rules, one module each: every module of this package is imported on the
first lookup in :data:`~deepfake_detect.evaluation.aggregation.AGGREGATIONS`, so a rule's module registers
itself there without an import line anywhere else (the built-in rules: ``evaluation/aggregation.py``)."""
