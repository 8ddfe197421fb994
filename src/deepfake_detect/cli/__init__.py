"""The ``deepfake-detect`` command line (SPEC §1). Nothing imports this package."""
