"""More sequence heads, one module each: every module of this package is imported on the first lookup
in :data:`~deepfake_detect.models.heads.SEQUENCE_HEADS`, so a head's module registers itself there
without an import line anywhere else (the built-in heads live in ``models/heads.py``)."""
