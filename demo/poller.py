"""What Lambda's SQS event source mapping does, for the local queue: receive batches, invoke the handler, delete.

One poller, one batch at a time, as the deployed mapping behaves with ``ReportBatchItemFailures``:

- a batch is up to ``batch_size`` messages, gathered for up to ``batching_window`` seconds;
- the handler gets an SQS event (``{"Records": [...]}``, each with ``messageId``, ``receiptHandle``, ``body``,
  ``attributes.ApproximateReceiveCount``...);
- the messages its answer does not list in ``batchItemFailures`` are deleted; the listed ones are left alone and
  come back when their visibility timeout ends; after the queue's ``maxReceiveCount`` receives, SQS itself moves
  them to the dead-letter queue (the queue's RedrivePolicy, which local SQS enforces as SQS does);
- a handler that raises, or answers with an item identifier that is empty or not in the batch, fails the whole
  batch (Lambda's documented rules for partial batch responses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The deployed event source mapping's defaults (the stacks' queueBatchSize and queueBatchWindowSeconds): up to 10
# messages a batch, gathered for up to a second.
BATCH_SIZE = 10
BATCHING_WINDOW_SECONDS = 1.0
SQS_RECEIVE_MAX = 10  # SQS returns at most 10 messages per ReceiveMessage
LONG_POLL_SECONDS = 1  # an idle poller waits this long on the queue, so stopping takes at most about a second


@dataclass(frozen=True)
class Message:
    """One received message, as the mapping passes it on."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BatchOutcome:
    """One invocation: the batch, the ids that failed (to be retried), how long the handler took."""

    messages: list[Message]
    failed_ids: frozenset[str]
    seconds: float
    error: str | None = None  # why the whole batch failed, when it did

    @property
    def succeeded(self) -> list[Message]:
        return [m for m in self.messages if m.message_id not in self.failed_ids]

    @property
    def failed(self) -> list[Message]:
        return [m for m in self.messages if m.message_id in self.failed_ids]


def sqs_event(messages: list[Message], queue_arn: str, region: str) -> dict:
    """The event Lambda gives a function for a batch of SQS messages."""
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": str(m.receive_count), **m.attributes},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def failed_message_ids(response: object, batch_ids: list[str]) -> tuple[frozenset[str], str | None]:
    """The ids to retry, from a handler's answer, by Lambda's rules; and why all of them, when that is the case.

    Success for all: no answer, an empty answer, or ``batchItemFailures`` empty or null. Failure for all: an answer
    that is not an object, or a failure entry whose ``itemIdentifier`` is missing, empty or not a message of the batch.
    """
    everything = frozenset(batch_ids)
    if response is None:
        return frozenset(), None
    if not isinstance(response, dict):
        return everything, f"the handler answered {type(response).__name__}, not an object"
    failures = response.get("batchItemFailures")
    if not failures:
        return frozenset(), None
    if not isinstance(failures, list):
        return everything, "batchItemFailures is not a list"
    failed = set()
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything, f"batchItemFailures names {identifier!r}, which is not a message of the batch"
        failed.add(identifier)
    return frozenset(failed), None


class QueuePoller:
    """Feeds one queue's messages to ``handler(event, context)`` in batches; see the module's docstring."""

    def __init__(self, sqs, queue_url: str, handler: Callable[[dict, object], object],
                 context_factory: Callable[[], object], batch_size: int = BATCH_SIZE,
                 batching_window: float = BATCHING_WINDOW_SECONDS, region: str = "us-east-1") -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be 1 to 10,000 (Lambda's limits for standard queues)")
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.context_factory = context_factory
        self.batch_size = batch_size
        self.batching_window = batching_window
        self.region = region
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.queue_arn = attributes["QueueArn"]

    def poll_once(self, wait_seconds: int = LONG_POLL_SECONDS) -> BatchOutcome | None:
        """Receive one batch and process it; ``None`` when the queue had nothing within ``wait_seconds``."""
        messages = self._receive(wait_seconds)
        if not messages:
            return None
        ids = [m.message_id for m in messages]
        started = time.perf_counter()
        try:
            response = self.handler(sqs_event(messages, self.queue_arn, self.region), self.context_factory())
        except Exception as error:  # noqa: BLE001  the function failed: the whole batch is retried
            failed, why = frozenset(ids), f"the handler raised {type(error).__name__}: {error}"
        else:
            failed, why = failed_message_ids(response, ids)
        seconds = time.perf_counter() - started
        outcome = BatchOutcome(messages, failed, seconds, why)
        self._delete(outcome.succeeded)
        return outcome

    def _receive(self, wait_seconds: int) -> list[Message]:
        """Up to ``batch_size`` messages: the first ones (waiting up to ``wait_seconds`` for them), then what else
        arrives within the batching window."""
        batch = self._receive_some(self.batch_size, wait_seconds)
        window_ends = time.monotonic() + self.batching_window
        while batch and len(batch) < self.batch_size:
            left = window_ends - time.monotonic()
            if left <= 0:
                break
            more = self._receive_some(self.batch_size - len(batch), min(int(left), 20))  # under 1 s left: short polls
            # A message received twice (a visibility timeout shorter than the window) is in the batch once.
            known = {m.message_id for m in more}
            batch = [m for m in batch if m.message_id not in known] + more
            if not more and left < 1:
                time.sleep(min(left, 0.05))
        return batch

    def _receive_some(self, count: int, wait_seconds: int) -> list[Message]:
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=min(SQS_RECEIVE_MAX, count),
                                            WaitTimeSeconds=wait_seconds, AttributeNames=["All"])
        return [_message(raw) for raw in received.get("Messages", [])]

    def _delete(self, messages: list[Message]) -> None:
        for start in range(0, len(messages), SQS_RECEIVE_MAX):
            chunk = messages[start : start + SQS_RECEIVE_MAX]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m.receipt_handle} for n, m in enumerate(chunk)])


def _message(raw: dict) -> Message:
    attributes = {name: value for name, value in raw.get("Attributes", {}).items() if name != "ApproximateReceiveCount"}
    return Message(raw["MessageId"], raw["ReceiptHandle"], raw["Body"],
                   int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1")), attributes)

