"""model/precision.py: what each ``tower_precision`` setting means on a device."""

from __future__ import annotations

import pytest
import torch

from dove_model.config import IndexParams, ServeParams
from dove_model.model.precision import native_bfloat16, tower_dtype

CPU = torch.device("cpu")


def test_a_forced_precision_is_kept_whatever_the_device_has() -> None:
    assert tower_dtype("float32", CPU) == torch.float32
    assert tower_dtype("bfloat16", CPU) == torch.bfloat16


def test_auto_takes_bfloat16_only_where_the_device_multiplies_it_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert not native_bfloat16(CPU)
    assert tower_dtype("auto", CPU) == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bfloat16(CPU)
    assert tower_dtype("auto", CPU) == torch.bfloat16


def test_a_torch_without_the_cpu_checks_reads_as_no_native_bfloat16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert tower_dtype("auto", CPU) == torch.float32


def test_serving_and_indexing_default_to_auto_and_refuse_other_formats() -> None:
    assert ServeParams().tower_precision == "auto" == IndexParams().tower_precision
    with pytest.raises(ValueError, match="tower_precision"):
        ServeParams(tower_precision="float16")
