"""Fixtures shared by every test: paths, real photos from ../shared/datasets, one loaded classifier."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("FIREWATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
MODEL_PATH = ROOT / "models" / "fire_classifier.tflite"
ARTIFACTS = ROOT / "test-artifacts"  # screenshots, to look at after a run
CHROMIUM = shutil.which("chromium")  # Debian's package: Playwright never downloads a browser here
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def _dataset_file(relative: str) -> Path:
    path = DATASETS / relative
    if not path.is_file():
        pytest.skip(f"real photo {relative} not found: the shared data sets are not at {DATASETS}")
    return path


@pytest.fixture(autouse=True, scope="session")
def _multipart_boundaries_within_rfc_2046():
    """Werkzeug's test client makes each form's boundary from time() and random(), and a random() under 0.001 prints
    long enough (0.000123...) to pass RFC 2046's 70 characters, which the web app refuses (400): about 3 uploads in
    1,000 failed at random. Its test forms get a fixed boundary instead."""
    import werkzeug.test

    encode = werkzeug.test.stream_encode_multipart

    def within_rfc(data, use_tempfile=True, threshold=1024 * 500, boundary=None):
        return encode(data, use_tempfile, threshold, boundary or "FirewatchTestFormBoundary")

    patch = pytest.MonkeyPatch()
    patch.setattr(werkzeug.test, "stream_encode_multipart", within_rfc)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"shared data sets not found at {DATASETS} (set FIREWATCH_DATASETS)")
    return DATASETS


@pytest.fixture(scope="session")
def fire_photo() -> Path:
    """A real 250x250 forest fire JPEG."""
    return _dataset_file("forest-fire/train/fire/fire_0001.jpg")


@pytest.fixture(scope="session")
def nofire_photo() -> Path:
    """A real 250x250 forest JPEG without fire."""
    return _dataset_file("forest-fire/train/nofire/nofire_0001.jpg")


@pytest.fixture(scope="session")
def fire_photos(datasets) -> list[Path]:
    return sorted((datasets / "forest-fire/train/fire").glob("*.jpg"))[:8]


@pytest.fixture(scope="session")
def nofire_photos(datasets) -> list[Path]:
    return sorted((datasets / "forest-fire/train/nofire").glob("*.jpg"))[:8]


@pytest.fixture(scope="session")
def classifier():
    from inference import Classifier

    return Classifier.load(MODEL_PATH)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright (modules using it skip when CHROMIUM is None)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def moto_endpoint():
    """moto in server mode on a free loopback port (as `make demo` runs it): its URL, for clients' endpoint_url."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def throwaway_aws(monkeypatch, region: str = "us-east-1") -> None:
    """Credentials and a region that reach nothing real, and no profile or endpoint override from the environment
    (``AWS_ENDPOINT_URL*``), so moto's in-process mock answers every call."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")] + ["AWS_PROFILE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
