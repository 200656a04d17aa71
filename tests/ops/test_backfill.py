"""``python -m ops backfill`` against moto's S3 and SQS: what is enqueued, in what shape, and how a run resumes."""

from __future__ import annotations

import json

import pytest

import ops.backfill as backfill
from lambda_image.events import Upload, parse_event

from .conftest import BUCKET, ops


def queued_uploads(account) -> list[Upload]:
    uploads = []
    for message in account.drain(account.queue_url):
        uploads += list(parse_event(json.loads(message["Body"]), BUCKET))
    return sorted(uploads, key=lambda upload: upload.key)


def summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_enqueues_uploads_without_a_result_of_their_version(account, capsys):
    new = account.upload("uploads/camera 1/new+fire (2).jpg")
    done = account.upload("uploads/done.jpg")
    account.put_result("uploads/done.jpg", done)
    account.upload("uploads/replaced.jpg", b"first bytes")
    account.put_result("uploads/replaced.jpg", "etag-of-an-older-version")
    account.s3.put_object(Bucket=BUCKET, Key="uploads/folder/", Body=b"")  # a console "folder": not an upload
    account.s3.put_object(Bucket=BUCKET, Key="elsewhere/x.jpg", Body=b"x")

    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url) == 0

    assert summary(capsys) == {"listed": 3, "already_classified": 1, "enqueued": 2, "failed": 0,
                               "last_key": "uploads/replaced.jpg"}  # fmt: skip
    uploads = queued_uploads(account)
    # The function's own parser reads the bodies as S3 notifications, keys decoded exactly, without a sequencer.
    assert [u.key for u in uploads] == ["uploads/camera 1/new+fire (2).jpg", "uploads/replaced.jpg"]
    assert uploads[0].etag == new and uploads[0].size == len(b"\xff\xd8\xff photo") and uploads[0].sequencer is None


def test_dry_run_counts_and_sends_nothing(account, capsys):
    for name in ("a", "b", "c"):
        account.upload(f"uploads/{name}.jpg")
    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url, "--dry-run") == 0
    assert summary(capsys)["would_enqueue"] == 3
    assert account.drain(account.queue_url) == []


def test_a_second_run_enqueues_only_what_is_still_missing(account, capsys):
    etags = {name: account.upload(f"uploads/{name}.jpg") for name in ("a", "b", "c")}
    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url) == 0
    for upload in queued_uploads(account)[:2]:  # the function classified two of them meanwhile
        account.put_result(upload.key, etags[upload.key[len("uploads/") : -len(".jpg")]])
    capsys.readouterr()
    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url) == 0
    assert summary(capsys)["enqueued"] == 1
    assert [u.key for u in queued_uploads(account)] == ["uploads/c.jpg"]


def test_messages_go_ten_per_send_message_batch(account):
    for i in range(25):
        account.upload(f"uploads/{i:02}.jpg")
    calls = []
    account.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", lambda params, **_: calls.append(params))
    progress = backfill.backfill(account.s3, account.sqs, BUCKET, account.queue_url, "us-east-1", backfill.Progress())
    assert [len(call["Entries"]) for call in calls] == [10, 10, 5] and progress.enqueued == 25
    assert len(account.drain(account.queue_url)) == 25


def test_start_after_resumes_and_an_interrupted_run_says_where(account, capsys, monkeypatch):
    for name in ("a", "b", "c", "d", "e"):
        account.upload(f"uploads/{name}.jpg")
    monkeypatch.setattr(backfill, "PAGE_SIZE", 2)
    sent_pages = []

    def send_then_interrupt(sqs, queue_url, bodies, keys, **_):
        if len(sent_pages) == 2:
            raise KeyboardInterrupt
        sent_pages.append(keys)
        return real_send(sqs, queue_url, bodies, keys)

    real_send = backfill.send_batch
    monkeypatch.setattr(backfill, "send_batch", send_then_interrupt)
    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url) == 130
    err = capsys.readouterr().err
    assert 'resume with --start-after "uploads/d.jpg"' in err  # two whole pages were done

    monkeypatch.setattr(backfill, "send_batch", real_send)
    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url, "--start-after", "uploads/d.jpg") == 0
    assert "last key done: uploads/e.jpg" in capsys.readouterr().err
    assert [u.key for u in queued_uploads(account)] == [f"uploads/{n}.jpg" for n in ("a", "b", "c", "d", "e")]


class FlakySqs:
    """SendMessageBatch that fails entries by plan: {entry index: [faults per attempt]} ("server", "sender" or None)."""

    def __init__(self, plan: dict[int, list]) -> None:
        self.plan, self.calls = plan, []

    def send_message_batch(self, QueueUrl, Entries):
        self.calls.append([entry["Id"] for entry in Entries])
        successful, failed = [], []
        for entry in Entries:
            faults = self.plan.get(int(entry["Id"]), [])
            fault = faults.pop(0) if faults else None
            if fault is None:
                successful.append({"Id": entry["Id"], "MessageId": "m" + entry["Id"]})
            else:
                failed.append({"Id": entry["Id"], "SenderFault": fault == "sender", "Code": f"{fault}-fault",
                               "Message": "injected"})  # fmt: skip
        return {"Successful": successful, "Failed": failed}


def test_failed_entries_are_retried_then_reported():
    sqs = FlakySqs({1: ["server", "server"], 2: ["sender"], 3: ["server"] * 10})
    keys = [f"uploads/{i}.jpg" for i in range(5)]
    failed = backfill.send_batch(sqs, "queue", [f"body{i}" for i in range(5)], keys, sleep=lambda seconds: None)
    assert sorted(f["key"] for f in failed) == ["uploads/2.jpg", "uploads/3.jpg"]
    assert {f["key"]: f["code"] for f in failed} == {"uploads/2.jpg": "sender-fault", "uploads/3.jpg": "server-fault"}
    assert sqs.calls == [["0", "1", "2", "3", "4"], ["1", "3"], ["1", "3"], ["3"]]  # SEND_ATTEMPTS in all


def test_entries_that_never_went_make_the_run_fail_and_are_named(account, capsys, monkeypatch):
    account.upload("uploads/a.jpg")
    monkeypatch.setattr(backfill, "send_batch", lambda sqs, url, bodies, keys: [
        {"key": keys[0], "code": "KmsThrottled", "message": "injected"}])  # fmt: skip
    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url) == 1
    out, err = capsys.readouterr()
    assert "not enqueued: uploads/a.jpg: KmsThrottled" in err
    assert json.loads(out.strip().splitlines()[-1])["failed"] == 1


def test_queue_url_from_the_environment(account, capsys, monkeypatch):
    account.upload("uploads/a.jpg")
    monkeypatch.setenv("FIREWATCH_UPLOAD_QUEUE_URL", account.queue_url)
    assert ops("backfill", "--bucket", BUCKET) == 0
    assert len(queued_uploads(account)) == 1


@pytest.mark.parametrize("option", [[], ["--queue-url", "q"]])
def test_a_local_endpoint_without_names_is_a_clear_error(account, capsys, option):
    assert ops("backfill", "--endpoint-url", "http://127.0.0.1:9", *option) == 2
    assert "give them on the command line" in capsys.readouterr().err


def test_an_object_under_results_that_is_not_a_result_does_not_count_as_done(account, capsys):
    account.upload("uploads/a.jpg")
    account.upload("uploads/b.jpg")
    account.s3.put_object(Bucket=BUCKET, Key="results/a.jpg.json", Body=b"<html>not json</html>")
    account.s3.put_object(Bucket=BUCKET, Key="results/b.jpg.json", Body=json.dumps({"etag": 7}).encode())
    assert ops("backfill", "--bucket", BUCKET, "--queue-url", account.queue_url) == 0
    assert [u.key for u in queued_uploads(account)] == ["uploads/a.jpg", "uploads/b.jpg"]


def test_the_queue_is_found_from_the_buckets_notification(account, capsys):
    from .conftest import notify_queue

    notify_queue(account)
    account.upload("uploads/a.jpg")
    account.drain(account.queue_url)  # whatever the upload itself notified: only the backfill's message counts here
    assert ops("backfill", "--bucket", BUCKET) == 0
    assert [u.key for u in queued_uploads(account)] == ["uploads/a.jpg"]
