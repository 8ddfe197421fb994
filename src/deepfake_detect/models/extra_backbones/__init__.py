"""More backbones, one module each: every module of this package is imported on the first lookup in
:data:`~deepfake_detect.models.backbones.BACKBONES`, so a backbone's module registers itself there without
an import line anywhere else (the built-in backbones live in ``models/backbones.py``)."""
