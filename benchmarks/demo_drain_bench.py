"""How fast the local system (`make demo`) drains a backlog of 1,000 uploads: S3 -> SQS -> the real handler.

The photos are put in the bucket first with the bucket's notification switched off, then the 1,000 notifications
(the bodies S3 sends) are put in the upload queue at once: the clock runs from the first message sent until the
queue is empty (each message is deleted after its result is written) and every result is there. Measured with the
deployed event source mapping's batch size (10) against one message per invocation (what the demo did before the
queue: one S3 event per upload).

``python -m benchmarks demo_drain`` (``FIREWATCH_DRAIN_UPLOADS`` changes the backlog's size).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote_plus

from demo.child import READY, ChildDemo, DemoFailed

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("FIREWATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
UPLOADS = int(os.environ.get("FIREWATCH_DRAIN_UPLOADS", "1000"))
BUCKET = "firewatch-drain"
CONFIGS = (("batches of 10 (as deployed)", 10), ("one message per invocation (before)", 1))
TIMEOUT_SECONDS = 1200


def _photos() -> list[bytes]:
    folders = [DATASETS / "forest-fire" / "train" / label for label in ("fire", "nofire")]
    paths = sorted(path for folder in folders for path in folder.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"the real photos are not at {DATASETS} (set FIREWATCH_DATASETS)")
    return [path.read_bytes() for path in paths[:: max(1, len(paths) // 200)]]


def _start_demo(batch_size: int) -> ChildDemo:
    """``python -m demo`` in a process of its own, on free ports, once its banner says everything is up."""
    demo = ChildDemo("--bucket", BUCKET, "--batch-size", str(batch_size))
    try:
        demo.read_until(READY, timeout=180)
    except DemoFailed:
        demo.stop(timeout=60)
        raise
    return demo


def _notification(key: str, size: int, etag: str) -> str:
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "firewatch-uploads",
               "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
               "object": {"key": quote_plus(key), "size": size, "eTag": etag}},
    }]})


def drain(batch_size: int, photos: list[bytes], count: int) -> dict:
    demo = _start_demo(batch_size)
    try:
        s3, sqs = demo.client("s3"), demo.client("sqs")
        notification = s3.get_bucket_notification_configuration(Bucket=BUCKET)
        notification.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
        keys = [f"uploads/drain/{n:05d}.jpg" for n in range(count)]

        def put(n: int) -> str:
            body = photos[n % len(photos)]
            etag = s3.put_object(Bucket=BUCKET, Key=keys[n], Body=body)["ETag"].strip('"')
            return _notification(keys[n], len(body), etag)

        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(put, range(count)))
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=notification)
        url = sqs.get_queue_url(QueueName="firewatch-uploads")["QueueUrl"]
        _wait_until_empty(sqs, url, deadline=time.monotonic() + 30)  # S3's set-up message
        started = time.perf_counter()
        for start in range(0, count, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": body}
                                                          for n, body in enumerate(bodies[start : start + 10])])
        enqueued = time.perf_counter() - started
        _wait_until_empty(sqs, url, deadline=time.monotonic() + TIMEOUT_SECONDS)
        seconds = time.perf_counter() - started
        results = sum(page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="results/drain/"))
        dead = int(sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName="firewatch-uploads-dlq")["QueueUrl"],
                                            AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
    finally:
        demo.stop(timeout=60)
    return {"uploads": count, "results": results, "dead_letters": dead, "enqueue_s": round(enqueued, 2),
            "drain_s": round(seconds, 2), "images_per_s": round(results / seconds, 1)}


def _wait_until_empty(sqs, url: str, deadline: float) -> None:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if not any(int(attributes[name]) for name in names):
            return
        time.sleep(0.25)  # a light poll: the endpoint is busy with the drain
    raise RuntimeError("the upload queue did not drain in time")


def run() -> list[dict]:
    photos = _photos()
    rows = []
    for name, batch_size in CONFIGS:
        print(f"  draining {UPLOADS} uploads, {name} ...", file=sys.stderr, flush=True)
        rows.append({"config": name, "batch_size": batch_size, **drain(batch_size, photos, UPLOADS)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| handler invocations | uploads | results | dead letters | enqueue (s) | drain (s) | images/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['config']} | {row['uploads']:,} | {row['results']:,} | {row['dead_letters']} | "
                     f"{row['enqueue_s']:.1f} | {row['drain_s']:.1f} | {row['images_per_s']:.1f} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        ok = row["results"] == row["uploads"] and row["dead_letters"] == 0
        lines.append(f"{'PASS' if ok else 'MISS'}: {row['config']}: {row['results']:,} of {row['uploads']:,} results, "
                     f"{row['dead_letters']} dead letters")
    if len(rows) == 2 and rows[1]["images_per_s"]:
        lines.append(f"batches drain {rows[0]['images_per_s'] / rows[1]['images_per_s']:.1f}x as fast as single messages")
    return lines


if __name__ == "__main__":
    table = run()
    print(markdown(table))
    print("\n".join(verdicts(table)))
