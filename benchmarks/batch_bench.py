"""The upload queue's batch size: images per second and cost per million images at batch size 1 vs 10.

One fresh process (``--batch-worker``), moto S3, SNS and DynamoDB in it, the real handler fed SQS batches of S3
notifications for the same photos at both batch sizes, in alternating rounds (each round uploads them under new keys,
so every image is classified). Measured: each invocation's time and every AWS request the handler makes. Cost per
million images, from those and the project's price table (``ops/prices.py``, us-east-1, dated):

- Lambda: one request per invocation, and GB-seconds of each invocation's billed duration at the stack's default
  memory (1,024 MB: the time measured on one core x 1,769 / 1,024, Lambda's CPU share, rounded up to 1 ms). The
  time spent inside AWS calls is left out: moto emulates them in process, at a cost that is not AWS's latency. Real
  calls add their latency per image at either batch size (the handler makes the same calls, one after another);
- SQS: S3 sends one message per upload; Lambda's poller receives and deletes each batch in one request each
  (empty polls, which cost the same at either batch size, are left out);
- DynamoDB: each PutItem of a result (under 1 KB) is one write unit for the table and one for the ``newest`` index;
- S3: the handler's GET and PUT requests, counted.

Not measured: S3 and DynamoDB latency from Lambda (moto answers in process), cold starts, SNS alerts.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter
from pathlib import Path

from inference.contract import results_table_definition
from ops import prices  # the project's one price table: us-east-1, dated

BATCH_SIZES = (1, 10)
ROUNDS = 3
PHOTOS_PER_CLASS = 20
MEMORY_MB = 1024  # the stack's default (lambdaMemoryMb)
FULL_VCPU_MB = 1769
WRITE_UNITS_PER_PUT = 2  # the table and its newest index (items under 1 KB)
TABLE = "bench-results"


def batch_photos(datasets: Path) -> list[Path]:
    """The same real photos for every batch size: the first of each class of the forest-fire training set."""
    folder = datasets / "forest-fire" / "train"
    return [p for label in ("fire", "nofire") for p in sorted((folder / label).glob("*.jpg"))[:PHOTOS_PER_CLASS]]


# --- the worker: one fresh process ------------------------------------------------------------------------------------


class _Context:
    function_name = "firewatch-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = MEMORY_MB
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:firewatch-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"


def worker(photo_list: str, out_path: str) -> None:
    import os

    import boto3
    from moto import mock_aws

    photos = [Path(line) for line in Path(photo_list).read_text().splitlines() if line]
    data = [p.read_bytes() for p in photos]
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        os.environ["ALERT_TOPIC_ARN"] = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
        boto3.client("dynamodb").create_table(**results_table_definition(TABLE))
        os.environ["FIREWATCH_RESULTS_TABLE"] = TABLE
        from lambda_image import handler as module

        requests: Counter[str] = Counter()
        in_aws = [0.0, 0.0]  # seconds spent inside AWS calls (moto, in process), and when the current call began

        def call_begins(model, **_):
            requests.update([f"{model.service_model.service_name}:{model.name}"])
            in_aws[1] = time.perf_counter()

        def call_ends(**_):
            in_aws[0] += time.perf_counter() - in_aws[1]

        for client in (module._s3(), module._dynamodb(), module._sns()):
            client.meta.events.register("before-call.*.*", call_begins)
            client.meta.events.register("after-call.*.*", call_ends)
        sequencer = iter(range(1 << 40, 1 << 41))

        def message(key: str, body: bytes) -> dict:
            etag = s3.put_object(Bucket="bench", Key=key, Body=body)["ETag"].strip('"')
            record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                      "s3": {"bucket": {"name": "bench"},
                             "object": {"key": key, "size": len(body), "eTag": etag, "sequencer": f"{next(sequencer):X}"}}}
            return {"messageId": key, "receiptHandle": key, "body": json.dumps({"Records": [record]}),
                    "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}}  # fmt: skip

        module.handler({"Records": [message("uploads/warm.jpg", data[0])]}, _Context())  # model load, first calls
        report = {size: {"invocation_ms": [], "compute_ms": [], "round_s": [], "requests": Counter(), "images": 0}
                  for size in BATCH_SIZES}  # fmt: skip
        for round_ in range(ROUNDS):
            for size in BATCH_SIZES if round_ % 2 == 0 else reversed(BATCH_SIZES):
                messages = [message(f"uploads/r{round_}-b{size}/{i}.jpg", body) for i, body in enumerate(data)]
                before = Counter(requests)
                elapsed = 0.0
                for start in range(0, len(messages), size):
                    aws_before, began = in_aws[0], time.perf_counter()
                    response = module.handler({"Records": messages[start : start + size]}, _Context())
                    took = time.perf_counter() - began
                    assert response == {"batchItemFailures": []}, response
                    report[size]["invocation_ms"].append(took * 1000)
                    # The function's own work: what moto spends emulating AWS is not what AWS would take.
                    report[size]["compute_ms"].append((took - (in_aws[0] - aws_before)) * 1000)
                    elapsed += took - (in_aws[0] - aws_before)
                report[size]["round_s"].append(elapsed)
                report[size]["requests"] += requests - before
                report[size]["images"] += len(messages)
    Path(out_path).write_text(json.dumps({str(k): v for k, v in report.items()}))


# --- the parent: cost and rows ----------------------------------------------------------------------------------------


def cost_per_million_images(measured: dict, batch_size: int) -> dict[str, float]:
    """USD per million images, by service, from one batch size's measurements."""
    images, invocations = measured["images"], len(measured["invocation_ms"])
    per_image = 1_000_000 / images
    slowdown = max(1.0, FULL_VCPU_MB / MEMORY_MB)
    gb_seconds = sum(math.ceil(ms * slowdown) / 1000 * MEMORY_MB / 1024 for ms in measured["compute_ms"])
    requests = measured["requests"]
    gets = sum(n for op, n in requests.items() if op.startswith("s3:") and op.split(":")[1].startswith(("Get", "Head")))
    puts = sum(n for op, n in requests.items() if op.startswith("s3:") and op.split(":")[1].startswith(("Put", "Copy", "List")))
    items = requests.get("dynamodb:PutItem", 0)
    return {
        "lambda": per_image * (invocations * prices.LAMBDA_MILLION_REQUESTS / 1e6
                               + gb_seconds * prices.LAMBDA_GB_SECOND["x86_64"]),
        # S3 sends each upload's message; the poller receives and deletes a whole batch in one request each.
        "sqs": 1_000_000 * (1 + 2 / batch_size) * prices.SQS_MILLION_REQUESTS / 1e6,
        "dynamodb": per_image * items * WRITE_UNITS_PER_PUT * prices.DYNAMODB_MILLION_WRITES / 1e6,
        "s3": per_image * (gets * prices.S3_GET_THOUSAND + puts * prices.S3_PUT_THOUSAND) / 1000,
    }


def rows(measured: dict[str, dict]) -> list[dict]:
    """The table: one row per figure, a column per batch size."""
    one, ten = (measured[str(size)] for size in BATCH_SIZES)
    costs = {size: cost_per_million_images(measured[str(size)], size) for size in BATCH_SIZES}

    def rate(m):
        return statistics.median(m["images"] / ROUNDS / s for s in m["round_s"])

    def row(metric, a, b):
        return {"table": "batch", "metric": metric, "batch_1": a, "batch_10": b}

    def per_image(m, key):
        return sum(m[key]) / m["images"]

    def calls(m):
        return sum(m["requests"].values()) / m["images"]

    result = [
        row("images per second, one environment, AWS calls excluded", rate(one), rate(ten)),
        row("handler time per image, AWS calls excluded (ms)", per_image(one, "compute_ms"), per_image(ten, "compute_ms")),
        row("handler time per image, moto's AWS calls included (ms)", per_image(one, "invocation_ms"),
            per_image(ten, "invocation_ms")),
        row("AWS requests by the handler per image", calls(one), calls(ten)),
    ]
    for service in ("lambda", "sqs", "dynamodb", "s3"):
        result.append(row(f"cost per 1M images: {service} (USD)", costs[1][service], costs[10][service]))
    result.append(row("cost per 1M images: total (USD)", sum(costs[1].values()), sum(costs[10].values())))
    return result


def markdown(batch_rows: list[dict]) -> str:
    width = max(len(r["metric"]) for r in batch_rows)
    lines = [
        f"| {'metric':<{width}} | batch size 1 | batch size 10 | ratio |",
        f"|{'-' * (width + 2)}|-------------:|--------------:|------:|",
    ]
    for r in batch_rows:
        ratio = r["batch_1"] / r["batch_10"] if r["batch_10"] else float("nan")
        if r["metric"].startswith(("images per second", "AWS requests")):
            ratio = 1 / ratio
        lines.append(f"| {r['metric']:<{width}} | {r['batch_1']:>12.3f} | {r['batch_10']:>13.3f} | {ratio:>4.1f}x |")
    lines.append(
        f"\nSame {2 * PHOTOS_PER_CLASS} photos at both batch sizes, {ROUNDS} alternating rounds, one process,"
        " FIREWATCH_THREADS=1;"
        f" Lambda at {MEMORY_MB} MB (time x {FULL_VCPU_MB}/{MEMORY_MB}, rounded up to 1 ms per invocation).\n"
        f"Prices: {prices.REGION}, as of {prices.AS_OF} (ops/prices.py). Ratio: batch 1 / batch 10 (for"
        " images per second and requests, batch 10 / batch 1)."
    )
    return "\n".join(lines)
