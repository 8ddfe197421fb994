"""The report's environment: digests that see every byte, and CPU kernels pinned before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deepfake_detect.experiment.environment import cpu_description, tree_digest


def test_tree_digest_sees_names_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"\x01\x02")
    (tmp_path / "y.csv").write_text("k,v\n")
    first = tree_digest(tmp_path)
    assert first.endswith("(2 files)") and first == tree_digest(tmp_path)
    (tmp_path / "a" / "x.jpg").write_bytes(b"\x01\x03")
    assert tree_digest(tmp_path) != first
    (tmp_path / "a" / "x.jpg").write_bytes(b"\x01\x02")
    (tmp_path / "a" / "x.jpg").rename(tmp_path / "a" / "z.jpg")  # same bytes, other name
    assert tree_digest(tmp_path) != first
    assert tree_digest(tmp_path, ("*.csv",)).endswith("(1 files)")


def test_cpu_description_reads_the_flags_of_this_machine() -> None:
    cpu = cpu_description()
    assert set(cpu["flags"]) >= {"avx2", "avx512_bf16"} and cpu["cores"] >= 1
    if Path("/proc/cpuinfo").is_file():
        text = Path("/proc/cpuinfo").read_text()
        assert cpu["flags"]["avx512_bf16"] == (" avx512_bf16" in text)


PROBE = """
import sys
from deepfake_detect.infra.runtime import pin_cpu_kernels
pinned = pin_cpu_kernels(sys.argv[1])
import torch
print(pinned, torch.backends.cpu.get_cpu_capability(), pin_cpu_kernels("avx2"))
"""


def test_pinned_kernels_take_effect_before_torch_and_not_after() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
    }
    run = subprocess.run(
        [sys.executable, "-c", PROBE, "avx2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert run.stdout.split() == ["True", "AVX2", "False"]  # the second call comes after torch's import
    native = subprocess.run(
        [sys.executable, "-c", PROBE, "native"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert native.stdout.split()[0] == "False"
