"""Move the dead-letter queue's messages back to the upload queue, to be classified again (after a fix, an outage).

On AWS it uses SQS's own redrive (StartMessageMoveTask), which moves every message server-side at a bounded rate,
and follows the task (ListMessageMoveTasks) until it ends. A local endpoint (``--endpoint-url``, moto in
``make demo``) has no redrive, so there it moves the messages itself: receive, send to the queue, and only then
delete from the dead-letter queue (at least once: a message may arrive twice, never be lost), at most as many as
the dead-letter queue held when it started.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .aws import DEAD_LETTER_QUEUE_OUTPUT, UPLOAD_BUCKET_OUTPUT, Aws, OperatorError, add_aws_arguments

POLL_SECONDS = 5.0
TIMEOUT_SECONDS = 3600.0
FINISHED = {"COMPLETED", "CANCELLED", "FAILED"}
RECEIVE_BATCH = 10
VISIBILITY_SECONDS = 60  # a message being moved stays hidden this long; moved ones are deleted well before


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dlq-url",
        help=f"the dead-letter queue (default: the stack's {DEAD_LETTER_QUEUE_OUTPUT} output, else the dead-letter "
        "queue of --queue-url or of the queue the upload bucket notifies)",
    )
    parser.add_argument("--bucket", help="the upload bucket, to find the queues by (default: the stack's output)")
    parser.add_argument(
        "--queue-url",
        help="where the messages go (default: the queue whose dead-letter queue it is; with --endpoint-url, that "
        "queue as SQS lists it)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print how many messages wait; move nothing")
    parser.add_argument("--max-per-second", type=int, metavar="N", help="redrive rate limit (default: SQS's own)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, metavar="SECONDS",
                        help="stop following the move after this long (it goes on in SQS; default: 3600)")  # fmt: skip
    add_aws_arguments(parser)


def run(args: argparse.Namespace, sleep=time.sleep, clock=time.monotonic) -> int:
    aws = Aws(args)
    sqs = aws.client("sqs")
    dlq_url = aws.name(args.dlq_url, DEAD_LETTER_QUEUE_OUTPUT, "--dlq-url", find=lambda: _find_dead_letter_queue(aws, args))
    before = waiting(sqs, dlq_url)
    print(f"dead-letter queue: {before} message(s) waiting", file=sys.stderr)
    if args.dry_run:
        print(json.dumps({"waiting": before}))
        return 0
    if args.endpoint_url:
        queue_url = args.queue_url or source_queue(sqs, dlq_url)
        moved, refused = move_by_hand(sqs, dlq_url, queue_url, before)
        status = "INCOMPLETE" if refused else "COMPLETED"
    else:
        moved, status = redrive(sqs, dlq_url, args.queue_url, args.max_per_second, args.timeout, sleep, clock)
    after = waiting(sqs, dlq_url)
    print(f"dead-letter queue: {after} message(s) waiting (was {before})", file=sys.stderr)
    print(json.dumps({"before": before, "moved": moved, "after": after, "status": status}))
    return 0 if status == "COMPLETED" else 1


def _find_dead_letter_queue(aws: Aws, args: argparse.Namespace) -> str | None:
    """The upload queue's dead-letter queue: the upload queue given, or the one the upload bucket notifies."""
    queue_url = args.queue_url
    if not queue_url:
        bucket = aws.name(args.bucket, UPLOAD_BUCKET_OUTPUT, "--bucket (or --dlq-url)")
        queue_url = aws.upload_queue_url(bucket)
    return aws.dead_letter_queue_url(queue_url) if queue_url else None


def waiting(sqs, queue_url: str) -> int:
    """The queue's approximate number of visible messages."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def queue_arn(sqs, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def source_queue(sqs, dlq_url: str) -> str:
    """The one queue whose redrive policy names this dead-letter queue."""
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
    if len(sources) != 1:
        raise OperatorError(f"{len(sources)} queues send to this dead-letter queue: give --queue-url")
    return sources[0]


def redrive(sqs, dlq_url: str, queue_url: str | None, max_per_second: int | None, timeout: float,
            sleep=time.sleep, clock=time.monotonic) -> tuple[int, str]:  # fmt: skip
    """Start SQS's message move task and follow it; (messages moved, the task's last status)."""
    from tqdm import tqdm

    source = queue_arn(sqs, dlq_url)
    request = {"SourceArn": source}
    if queue_url:  # without it, SQS moves each message back to the queue it came from
        request["DestinationArn"] = queue_arn(sqs, queue_url)
    if max_per_second:
        request["MaxNumberOfMessagesPerSecond"] = max_per_second
    handle = sqs.start_message_move_task(**request)["TaskHandle"]
    print(f"move task started: {handle}", file=sys.stderr)
    deadline = clock() + timeout
    moved, status = 0, "RUNNING"
    with tqdm(desc="replay", unit=" messages", file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            task = _task(sqs, source, handle)
            status = task.get("Status", status)
            bar.total = task.get("ApproximateNumberOfMessagesToMove", bar.total)
            bar.update(task.get("ApproximateNumberOfMessagesMoved", moved) - moved)
            moved = task.get("ApproximateNumberOfMessagesMoved", moved)
            if status in FINISHED:
                break
            if clock() >= deadline:
                print(f"still {status} after {timeout:.0f} s; it goes on in SQS. Cancel it with: aws sqs "
                      f"cancel-message-move-task --task-handle {handle}", file=sys.stderr)  # fmt: skip
                break
            sleep(POLL_SECONDS)
    if status == "FAILED":
        print(f"move task failed: {task.get('FailureReason', 'no reason given')}", file=sys.stderr)
    return moved, status


def _task(sqs, source_arn: str, handle: str) -> dict:
    """This move task's entry (the newest of the source's tasks: SQS runs one at a time per source queue)."""
    results = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1).get("Results", [])
    for task in results:
        if task.get("TaskHandle") in (None, handle):  # finished tasks no longer carry their handle
            return task
    return {}


def move_by_hand(sqs, dlq_url: str, queue_url: str, expected: int) -> tuple[int, int]:
    """Receive, send, then delete, RECEIVE_BATCH at a time, until the queue is empty or ``expected`` moved;
    (messages moved, messages the queue refused, which stay in the dead-letter queue)."""
    from tqdm import tqdm

    moved, refused, empty_receives = 0, 0, 0
    with tqdm(total=expected, desc="replay", unit=" messages", file=sys.stderr, dynamic_ncols=True) as bar:
        while moved < expected and empty_receives < 2:
            messages = sqs.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=min(RECEIVE_BATCH, expected - moved),
                VisibilityTimeout=VISIBILITY_SECONDS, MessageAttributeNames=["All"],
            ).get("Messages", [])  # fmt: skip
            if not messages:
                empty_receives += 1
                continue
            entries = [{"Id": str(i), "MessageBody": m["Body"], **_attributes(m)} for i, m in enumerate(messages)]
            sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            done = [messages[int(entry["Id"])] for entry in sent.get("Successful", [])]
            for entry in sent.get("Failed", []):
                refused += 1
                print(f"not moved (stays in the dead-letter queue): {entry.get('Code')}: {entry.get('Message')}",
                      file=sys.stderr)  # fmt: skip
            if done:  # deleted only once sent: a crash in between repeats a message, never loses one
                sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ])  # fmt: skip
            moved += len(done)
            bar.update(len(done))
            if not done:
                break  # every send failed: stop rather than spin; the messages reappear after the visibility timeout
    return moved, refused


def _attributes(message: dict) -> dict:
    return {"MessageAttributes": message["MessageAttributes"]} if message.get("MessageAttributes") else {}
