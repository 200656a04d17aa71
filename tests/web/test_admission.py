"""Decode admission: how many photos are decoded at once, per worker and across the server's workers."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import pytest

from inference import Classifier
from tests.conftest import MODEL_PATH
from tests.core import images
from web_app import create_app
from web_app.admission import LARGE_DECODE_PIXELS, Admission, Busy, SlotLocks, decoded_pixels

TARGET = (160, 160)


def test_decoded_pixels_come_from_the_header():
    assert decoded_pixels(images.png_with_header_size(8000, 5000), TARGET) == 40_000_000
    # A 12 MP camera JPEG is decoded at 1/8 scale: small, whatever its header says.
    assert decoded_pixels(images.jpeg_with_header_size(4000, 3000), TARGET) == 500 * 375
    # ...but never below the model's input size.
    assert decoded_pixels(images.jpeg_with_header_size(640, 480), TARGET) == 320 * 240
    assert decoded_pixels(b"not an image at all", TARGET) == 0
    assert decoded_pixels(b"", TARGET) == 0


def test_a_slot_is_held_until_released(tmp_path):
    first, second = SlotLocks(tmp_path, 1), SlotLocks(tmp_path, 1)  # as two worker processes see them
    with first.hold(time.monotonic() + 1):
        with pytest.raises(Busy):
            with second.hold(time.monotonic() + 0.1):
                pass
    with second.hold(time.monotonic() + 0.1):
        pass


def test_a_dead_workers_slot_comes_free(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
         " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(tmp_path / "decode-slot-0.lock")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy):
            with SlotLocks(tmp_path, 1).hold(time.monotonic() + 0.1):
                pass
    finally:
        holder.kill()
        holder.wait()
    with SlotLocks(tmp_path, 1).hold(time.monotonic() + 2):
        pass


class CountingClassifier(Classifier):
    """The real classifier, whose classify only records how many run at once (the photos are forged headers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.running = self.most = 0
        self._lock = threading.Lock()

    def classify(self, data: bytes):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.1)
        with self._lock:
            self.running -= 1
        return super().classify(images.encode(images.solid(), "PNG"))


def _upload_concurrently(app, photos: list[bytes]) -> list[int]:
    statuses = []

    def upload(data):
        response = app.test_client().post("/api/v1/classify", data={"image": (io.BytesIO(data), "big.png")},
                                          content_type="multipart/form-data")
        statuses.append(response.status_code)

    threads = [threading.Thread(target=upload, args=(data,)) for data in photos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_eight_concurrent_large_photos_are_decoded_one_at_a_time(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREWATCH_DECODE_LOCK_DIR", str(tmp_path))
    classifier = CountingClassifier.load(MODEL_PATH)
    app = create_app(classifier)
    large = images.png_with_header_size(8000, 5000)
    assert decoded_pixels(large, TARGET) > LARGE_DECODE_PIXELS
    assert _upload_concurrently(app, [large] * 8) == [200] * 8
    assert classifier.most == 1


def test_small_photos_are_decoded_side_by_side_up_to_the_worker_bound(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREWATCH_DECODE_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("FIREWATCH_DECODES_PER_WORKER", "2")
    classifier = CountingClassifier.load(MODEL_PATH)
    app = create_app(classifier)
    small = images.encode(images.solid(size=(640, 480)), "PNG")
    assert _upload_concurrently(app, [small] * 8) == [200] * 8
    assert classifier.most == 2


def test_a_photo_that_waits_too_long_is_503_busy(tmp_path, classifier):
    app = create_app(classifier)
    app.extensions["firewatch.admission"] = Admission(tmp_path, wait_seconds=0.2)
    large = images.png_with_header_size(8000, 5000)
    with SlotLocks(tmp_path, 1).hold(time.monotonic() + 1):  # another worker decodes a large photo meanwhile
        response = app.test_client().post("/api/v1/classify", data={"image": (io.BytesIO(large), "big.png")},
                                          content_type="multipart/form-data")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "busy"


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_admission_settings_are_refused(monkeypatch, value):
    monkeypatch.setenv("FIREWATCH_LARGE_DECODES", value)
    with pytest.raises(ValueError, match="FIREWATCH_LARGE_DECODES"):
        Admission.from_env()


def test_a_process_without_gunicorns_folder_removes_its_own_slot_folder_on_exit(tmp_path):
    """Flask's test client and other servers get a folder of their own; it must not outlive the process."""
    script = ("import os; os.environ.pop('FIREWATCH_DECODE_LOCK_DIR', None)\n"
              "from web_app.admission import Admission\n"
              "a = Admission.from_env()\n"
              "with a.decode(b'', (160, 160)): pass\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.iterdir()), "the slot folder was removed when the process exited"


def test_a_forked_child_leaves_its_parents_slot_folder_in_place(tmp_path):
    script = ("import os, sys; os.environ.pop('FIREWATCH_DECODE_LOCK_DIR', None)\n"
              "from web_app.admission import Admission\n"
              "Admission.from_env()\n"
              "child = os.fork()\n"
              "if child == 0:\n"
              "    sys.exit(0)\n"  # runs the inherited exit hooks
              "os.waitpid(child, 0)\n"
              "print(len(os.listdir(os.environ['TMPDIR'])))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1", "the parent's folder outlived the child's exit"
    assert not list(tmp_path.iterdir()), "and went when the parent exited"
