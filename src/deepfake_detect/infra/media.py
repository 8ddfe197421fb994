"""Which files are videos, and how large a frame may be: one answer for every command."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PIXELS", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts"}
)
"""File suffixes (compared case-insensitively) that count as videos where a folder is searched: ``detect``
given a folder, and the folder-scanning dataset layouts of ``preprocess``. Each one's container has its
demuxer in ``config.DEFAULT_CONTAINER_FORMATS`` (mov/mp4, matroska, webm, avi, mpeg, asf, flv, 3gp,
mpegts)."""

DEFAULT_MAX_PIXELS = 3840 * 2160
"""Frames with more pixels than this (4K UHD) are refused as ``too_large`` unless configured otherwise."""
