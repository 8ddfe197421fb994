"""The paper's experiments (SPEC §2 'Evaluation', layer 4): leakage-free repeated splits (``splits``), the
protocol (``runner``), data preparation (``prepare``) and the report (``report``, ``report_text``).

Import the modules directly; this package does no work at import time.
"""
