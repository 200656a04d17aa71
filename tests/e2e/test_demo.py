"""The whole local system as `make demo` starts it: upload to local S3, see results, stop cleanly."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from inference import Classifier
from tests.conftest import ARTIFACTS, CHROMIUM, ROOT
from tests.page import VIEWPORT, card, wait_for_results

BUCKET = "firewatch-e2e"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens there (TIME_WAIT leftovers of closed connections do not count, as for any server)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Demo:
    def __init__(self, web_port: int, s3_port: int) -> None:
        self.web_port, self.s3_port = web_port, s3_port
        self.web_url, self.s3_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{s3_port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "demo", "--web-port", str(web_port), "--s3-port", str(s3_port), "--bucket", BUCKET],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        # A thread owns the pipe: select() on it would miss lines already buffered inside the text wrapper.
        self._incoming: queue.Queue[str] = queue.Queue()
        self._ended = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._incoming.put(line)
        self._ended.set()

    def read_until(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (self._ended.is_set() and self._incoming.empty()):
            try:
                line = self._incoming.get(timeout=0.1)
            except queue.Empty:
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed within {timeout} s; output so far:\n{''.join(self.lines)}")

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture(scope="module")
def demo():
    system = Demo(free_port(), free_port())
    try:
        system.read_until("Ctrl-C stops everything", timeout=120)
        yield system
    finally:
        if system.process.poll() is None:
            os.killpg(system.process.pid, signal.SIGKILL)


def wait_for_object(s3, key: str, timeout: float = 10.0) -> tuple[dict, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            return json.loads(body), time.monotonic() - started
        except s3.exceptions.NoSuchKey:
            time.sleep(0.05)
    raise AssertionError(f"{key} did not appear within {timeout} s")


def test_banner_tells_how_to_use_it(demo):
    text = "".join(demo.lines)
    assert demo.web_url in text and demo.s3_url in text
    assert f"aws s3 cp photo.jpg s3://{BUCKET}/uploads/photo.jpg --endpoint-url {demo.s3_url}" in text


def test_uploaded_photos_are_classified_within_two_seconds(demo, fire_photo, nofire_photo):
    s3 = demo.s3()
    classifier = Classifier.load()
    for photo, key in ((fire_photo, "uploads/field trip/fire one.jpg"), (nofire_photo, "uploads/forest.jpg")):
        data = photo.read_bytes()
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        result, seconds = wait_for_object(s3, "results/" + key.removeprefix("uploads/") + ".json")
        assert seconds <= 2.0, f"result after {seconds:.2f} s"
        expected = classifier.classify(data)
        assert result["label"] == expected.label
        assert result["fire_probability"] == pytest.approx(expected.fire_probability, abs=1e-4)
        assert result["bucket"] == BUCKET and result["key"] == key and result["size"] == len(data)
        assert result["model_version"] == classifier.version and result["classified_at"]
    demo.read_until("uploads/forest.jpg ->", timeout=5)


def test_a_corrupt_upload_gets_an_error_result(demo):
    s3 = demo.s3()
    s3.put_object(Bucket=BUCKET, Key="uploads/broken.jpg", Body=b"\xff\xd8\xff\xe0 not really a jpeg")
    result, _ = wait_for_object(s3, "results/broken.jpg.json")
    assert result["error"]["code"] == "corrupt_image" and "label" not in result
    demo.read_until("uploads/broken.jpg -> error corrupt_image", timeout=5)


def test_objects_outside_uploads_are_not_classified(demo, fire_photo):
    s3 = demo.s3()
    s3.put_object(Bucket=BUCKET, Key="elsewhere/photo.jpg", Body=fire_photo.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="uploads/after.jpg", Body=fire_photo.read_bytes())
    wait_for_object(s3, "results/after.jpg.json")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")["Contents"]]
    assert not any("elsewhere" in k or "photo.jpg" in k for k in keys)


def test_the_web_app_runs_beside_it(demo, fire_photo):
    with urllib.request.urlopen(demo.web_url + "/healthz", timeout=10) as response:
        assert json.load(response)["status"] == "ok"


def test_a_second_demo_on_the_same_ports_says_so(demo):
    done = subprocess.run([sys.executable, "-m", "demo", "--web-port", str(demo.web_port), "--s3-port", str(demo.s3_port)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "already taken" in done.stderr and "another `make demo`" in done.stderr


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); browser test skipped")
def test_a_person_sees_both_targets_in_the_browser(demo, browser, classifier, fire_photo, nofire_photo):
    """Upload through the page (web target), and see an S3 upload's result arrive in the side panel (serverless)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(demo.web_url + "/")
        page.set_input_files("#image-input", [str(fire_photo)])
        wait_for_results(page, 1)
        expected = classifier.classify(fire_photo.read_bytes())
        assert card(page, fire_photo.name).get_attribute("data-state") == expected.label == "fire"

        demo.s3().put_object(Bucket=BUCKET, Key="uploads/from-the-browser-test.jpg", Body=nofire_photo.read_bytes())
        page.wait_for_function(
            "() => document.querySelector('#pipeline .feed-name')?.textContent === 'from-the-browser-test.jpg'",
            timeout=20_000,  # the handler's result, then one poll of the panel
        )
        newest = page.locator("#pipeline .feed-item").first
        assert newest.get_attribute("data-state") == classifier.classify(nofire_photo.read_bytes()).label
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo-both-targets.png"), full_page=True)
    finally:
        context.close()


def test_ctrl_c_stops_everything_and_frees_the_ports(demo):
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0
    demo.read_until("Firewatch demo stopped", timeout=5)
    with pytest.raises(ProcessLookupError):
        os.killpg(demo.process.pid, 0)  # nothing left in its process group
    assert port_is_free(demo.web_port) and port_is_free(demo.s3_port)
