"""The demo (SPEC §1), the top of layer 4: see :mod:`deepfake_detect.demo.run`."""

from deepfake_detect.demo.run import (
    DEMO_CONFIG,
    PAPER_CONFIG,
    DemoResult,
    demo_config,
    last_model_path,
    last_model_pointer,
    packaged_config,
    record_last_model,
    run_demo,
)

__all__ = [
    "DEMO_CONFIG",
    "PAPER_CONFIG",
    "DemoResult",
    "demo_config",
    "last_model_path",
    "last_model_pointer",
    "packaged_config",
    "record_last_model",
    "run_demo",
]
