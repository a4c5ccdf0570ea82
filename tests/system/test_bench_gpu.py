"""bench/gpu.py's code path (corruptions on the device, geometry, background Parquet writing, plain
inference) at tiny size on the CPU, so it works wherever a GPU is lent."""

from __future__ import annotations

import pytest
import torch

from bench import gpu


def test_tiny_cpu_run_extracts_every_setting_and_times_both_sides() -> None:
    result = gpu.run(torch.device("cpu"), num_images=24, corruption_names=("gaussian_noise", "fog"),
                     severities=(1, 4), batch_size=8, arch="small_cnn")
    assert result.images == 24 * 5 and result.rows == result.images
    assert result.extract_s > 0 and result.plain_s > 0
    assert "ratio end-to-end time / plain inference time" in result.lines()[-1]


@pytest.mark.slow  # the benchmark's whole code path
def test_without_cuda_main_says_not_measured_and_still_runs_the_code_path(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu.main()
    out = capsys.readouterr().out
    assert out.startswith("not measured: no CUDA device\n")
    assert "img/s" in out and "rows written" in out
