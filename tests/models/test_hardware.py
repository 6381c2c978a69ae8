"""AMX / AVX512-BF16 detection: the accumulator's auto dtype and benchmark records use it."""

from __future__ import annotations

from pathlib import Path

from models.hardware import cpu_has_amx_bf16, cpu_has_fast_bf16


def test_amx_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    amx, avx = tmp_path / "amx", tmp_path / "avx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    avx.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_has_amx_bf16(str(amx)) is True
    assert cpu_has_amx_bf16(str(avx)) is False
    assert cpu_has_amx_bf16(str(tmp_path / "missing")) is False


def test_fast_bf16_means_avx512_bf16_or_amx(tmp_path: Path) -> None:
    amx, avx, old = tmp_path / "amx", tmp_path / "avx", tmp_path / "old"
    amx.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    avx.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    old.write_text("flags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert cpu_has_fast_bf16(str(amx)) is True
    assert cpu_has_fast_bf16(str(avx)) is True
    assert cpu_has_fast_bf16(str(old)) is False
    assert cpu_has_fast_bf16(str(tmp_path / "missing")) is False
