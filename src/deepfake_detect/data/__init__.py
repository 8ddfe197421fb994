"""Datasets: layouts that list a dataset's videos, the clip store and torch datasets (SPEC §3, layer 3)."""
