"""The web benchmark's machinery on a tiny budget (the real run is ``python -m benchmarks.web_bench``)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_web_bench_runs_and_reports_every_cell(datasets):
    from benchmarks import web_bench

    rows = web_bench.run(seconds=0.3, leak_requests=1001, baseline=False)
    throughput = [r for r in rows if r["table"] == "web throughput"]
    assert {(r["photo"], r["concurrency"]) for r in throughput} == {
        (photo, c) for photo in ("250x250", "4000x3000 (12 MP)") for c in web_bench.CONCURRENCY
    }
    assert all(r["errors"] == 0 and r["requests"] > 0 and r["p50_ms"] <= r["p99_ms"] for r in throughput)
    memory = [r for r in rows if r["table"] == "web memory"]
    assert memory and memory[0]["requests"] == 1001 and memory[0]["rss_after_all_mb"] > 0
    assert "| app |" in web_bench.markdown(rows)
