"""The batch-size benchmark's cost arithmetic (the measured run is ``python -m benchmarks lambda``)."""

from __future__ import annotations

import pytest

from benchmarks.batch_bench import cost_per_million_images, markdown, rows


def _measured(invocation_ms: list[float], images: int, requests: dict) -> dict:
    return {"invocation_ms": [ms * 3 for ms in invocation_ms], "compute_ms": invocation_ms, "round_s": [1.0, 1.0, 1.0],
            "requests": requests, "images": images}  # fmt: skip


def test_cost_per_million_images_counts_each_service():
    # 10 images in one invocation of 100 ms (173 ms billed at 1,024 MB), 2 GETs and 1 PUT and 1 PutItem per image.
    measured = _measured([100.0], 10, {"s3:GetObject": 20, "s3:PutObject": 10, "dynamodb:PutItem": 10})
    cost = cost_per_million_images(measured, batch_size=10)
    assert cost["lambda"] == pytest.approx(1e5 * (0.20 / 1e6 + 0.173 * 0.0000166667))
    assert cost["sqs"] == pytest.approx(1.2 * 0.40)  # S3's send, then one receive and one delete per 10
    assert cost["dynamodb"] == pytest.approx(2 * 0.625)  # the table and its newest index
    assert cost["s3"] == pytest.approx(2 * 0.40 + 5.0)


def test_rows_compare_the_two_batch_sizes():
    one = _measured([30.0] * 40, 40, {"s3:GetObject": 80, "s3:PutObject": 40, "dynamodb:PutItem": 40})
    ten = _measured([250.0] * 4, 40, {"s3:GetObject": 80, "s3:PutObject": 40, "dynamodb:PutItem": 40})
    table = {r["metric"]: r for r in rows({"1": one, "10": ten})}
    total = table["cost per 1M images: total (USD)"]
    assert total["batch_10"] < total["batch_1"]  # fewer Lambda requests and SQS receives, less compute per image
    assert table["AWS requests by the handler per image"]["batch_1"] == 4
    assert "| batch size 1 | batch size 10 |" in markdown(list(table.values()))
