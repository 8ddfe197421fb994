"""Dataset layouts: read a dataset's folder into VideoRecords (SPEC §5).

``load_dataset("dfdc", root)`` returns a :class:`DatasetListing`. Every layout is one function
registered in ``LAYOUTS``; adding one is one module and one decorator: every module of this package is
imported on the registry's first lookup (the imports below only re-export the built-in ones).
"""

from deepfake_detect.data.layouts import celebdf, dfdc, dfdc_preview, ffpp, generic
from deepfake_detect.data.layouts.base import (
    LAYOUTS,
    VIDEO_SUFFIXES,
    DatasetError,
    DatasetListing,
    LayoutFn,
    load_dataset,
)

__all__ = [
    "LAYOUTS",
    "VIDEO_SUFFIXES",
    "DatasetError",
    "DatasetListing",
    "LayoutFn",
    "celebdf",
    "dfdc",
    "dfdc_preview",
    "ffpp",
    "generic",
    "load_dataset",
]
