"""Smoke test of benchmarks/networks.py (plain vs fast) with tiny sizes (the real run takes minutes)."""

from __future__ import annotations

import importlib.util
import json

import torch

from .conftest import ROOT


def test_networks_benchmark_writes_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_networks", ROOT / "benchmarks" / "networks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "networks.json"
    argv = ["--out", str(out), "--threads", "1", "--repeats", "2", "--skip-v1", "--skip-vq",
            "--bundled-batch", "1", "--bundled-size", "64"]
    threads = torch.get_num_threads()
    try:
        report = module.main(argv)
    finally:
        torch.set_num_threads(threads)  # the script sets its own thread count
    assert json.loads(out.read_text()) == report
    names = [case["name"] for case in report["results"]]
    assert names == ["bundled_pixel"]  # the shipped checkpoint, plain against fast
    for case in report["results"]:
        assert case["parameters"] == 1_568_235 and case["input"] == [1, 3, 64, 64] and case["threads"] == 1
        assert case["gflop"] > 0 and case["plain_ms"] > 0 and case["fast_ms"] > 0 and case["ratio"] > 0
        assert case["plain_cpu_ms"] > 0 and case["fast_cpu_ms"] > 0 and case["cpu_ratio"] > 0
        assert len(case["plain_all_ms"]) == len(case["fast_all_ms"]) == 2 and case["busy_calls"] == 4  # no waiting
        paired = sorted(p / f for p, f in zip(case["plain_all_ms"], case["fast_all_ms"]))
        assert abs(case["paired_ratio"] - sum(paired) / 2) < 0.01  # the median of two: their mean (rounded times)
        assert case["max_abs_diff"] < 1e-5 and case["fast_channels_last"]
        assert case["fast_cache_mib"] > 0  # pre-packed convolution weights
    assert "bundled_pixel" in capsys.readouterr().out
