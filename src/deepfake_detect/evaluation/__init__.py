"""Evaluation (SPEC §2 'Evaluation', layer 4): clip- and video-level metrics, aggregation of clip
probabilities into video verdicts, and figures.

Modules: ``metrics`` (accuracy, log loss, ROC AUC, AP, EER; numpy only), ``aggregation`` (the
``AGGREGATIONS`` registry: mean, confident, max) and ``plots``. Import them directly; this package
does no work at import time.
"""
