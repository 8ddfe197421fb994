"""Infrastructure used by every layer: the crash-proof worker pool, process settings, logging set-up and the
shared plumbing (atomic writes, JSON, safetensors, similarity, video suffixes). Imports nothing of the package
above it and nothing heavy at import time."""
