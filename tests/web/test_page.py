"""The upload page, its no-script fallback, security headers and in-memory uploads, with Flask's test client."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask, Request
from werkzeug.test import EnvironBuilder

from inference import Classifier, Limits
from tests.conftest import MODEL_PATH
from web_app import create_app
from web_app.app import InMemoryRequest


def test_page_has_an_accessible_upload_form(client, classifier):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert re.search(r'<input id="image-input"[^>]*type="file"[^>]*name="image"[^>]*multiple', html)
    assert '<label for="image-input"' in html
    assert 'enctype="multipart/form-data"' in html
    assert 'role="status"' in html and 'aria-live="polite"' in html
    assert classifier.version in html


def test_page_has_no_inline_script_or_style(client):
    html = client.get("/").get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assert re.search(r"<script[^>]*>\s*[^<\s]", html) is None  # no script body
    assert " style=" not in html and "<style" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/v1/model", "/static/app.js", "/nope", "/api/nope"])
def test_security_headers_everywhere(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(("path", "mimetype"), [("/static/app.js", "text/javascript"), ("/static/app.css", "text/css")])
def test_static_files(client, path, mimetype):
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == mimetype
    response.close()


def test_form_without_script_shows_verdicts_and_errors(client, classifier, fire_photo, nofire_photo):
    files = [
        (io.BytesIO(fire_photo.read_bytes()), "fire-one.jpg"),
        (io.BytesIO(nofire_photo.read_bytes()), "forest-two.jpg"),
        (io.BytesIO(b"not a photo at all"), "notes.txt"),
    ]
    response = client.post("/", data={"image": files})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for name, path in (("fire-one.jpg", fire_photo), ("forest-two.jpg", nofire_photo)):
        prediction = classifier.classify(path.read_bytes())
        card = html[html.index(f">{name}<") :]
        assert f"{prediction.fire_probability * 100:.1f}% fire probability" in card
        assert ("Fire" if prediction.is_fire else "No fire") in card[: card.index("</li>")]
    assert 'data-state="error"' in html
    assert "The file is not an image this service can read" in html
    assert "2 photos checked, 1 could not be read." in html  # the text file is not counted as checked


def test_form_without_a_file_explains_in_words(client):
    response = client.post("/", data={"image": (io.BytesIO(b""), "")}, content_type="multipart/form-data")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "No photo was sent" in response.get_data(as_text=True)


def test_form_refuses_too_many_files(web_app, nofire_photo):
    client = web_app.test_client()
    data = nofire_photo.read_bytes()
    count = web_app.config["PAGE_MAX_FILES"] + 1
    response = client.post("/", data={"image": [(io.BytesIO(data), f"{i}.jpg") for i in range(count)]})
    assert response.status_code == 400
    assert f"at most {count - 1} photos" in response.get_data(as_text=True)


def test_page_errors_are_friendly_html(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Page not found" in html and "Back to the photo checker" in html


def test_page_upload_over_the_limit_is_a_friendly_413():
    app = create_app(Classifier.load(MODEL_PATH, limits=Limits(max_bytes=10_000)))
    response = app.test_client().post("/", data={"image": (io.BytesIO(b"\x00" * 200_000), "big.jpg")})
    assert response.status_code == 413 and response.mimetype == "text/html"
    assert "too large" in response.get_data(as_text=True)


def _big_upload_environ() -> dict:
    data = b"\xff\xd8\xff" + bytes(2 * 1024 * 1024)  # well over Werkzeug's 500 KB spooling threshold
    return EnvironBuilder(method="POST", path="/api/v1/classify", data={"image": (io.BytesIO(data), "big.jpg")}).get_environ()


@pytest.fixture
def no_temporary_files(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    import tempfile

    import werkzeug.formparser

    for module in (tempfile, werkzeug.formparser):
        for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)


def test_uploads_stay_in_memory(no_temporary_files):
    with Flask(__name__).app_context():
        with pytest.raises(AssertionError, match="temporary file"):  # Werkzeug's default would spool to disk
            Request(_big_upload_environ()).files["image"]
        upload = InMemoryRequest(_big_upload_environ()).files["image"]
    assert isinstance(upload.stream, io.BytesIO)
    assert len(upload.read()) == 2 * 1024 * 1024 + 3


def test_big_photo_is_classified_without_temporary_files(client, classifier, no_temporary_files):
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((900, 900), 64).convert("RGB").save(buffer, "PNG")
    data = buffer.getvalue()
    assert len(data) > 600 * 1024
    response = client.post("/api/v1/classify", data={"image": (io.BytesIO(data), "noise.png")})
    assert response.status_code == 200
    assert response.get_json()["fire_probability"] == classifier.classify(data).fire_probability


def test_form_results_mark_the_threshold_and_borderline_verdicts(client, classifier, fire_photos, nofire_photos):
    verdicts = {path: classifier.classify(path.read_bytes()) for path in fire_photos + nofire_photos}
    borderline = next((p for p, v in verdicts.items() if v.certainty == "borderline"), None)
    clear = next(p for p, v in verdicts.items() if v.certainty == "clear")
    if borderline is None:
        pytest.skip("none of the sample photos is borderline for this model")
    files = [(io.BytesIO(borderline.read_bytes()), "near.jpg"), (io.BytesIO(clear.read_bytes()), "sure.jpg")]
    html = client.post("/", data={"image": files}).get_data(as_text=True)
    near, sure = html[html.index(">near.jpg<"):], html[html.index(">sure.jpg<"):]
    near, sure = near[: near.index("</li>")], sure[: sure.index("</li>")]
    assert f'<line x1="{classifier.threshold * 100}"' in near and f'<line x1="{classifier.threshold * 100}"' in sure
    assert re.search(r'<p class="certainty">', near) and "Borderline" in near
    assert '<p class="certainty" hidden>' in sure
    assert 'data-certainty="borderline"' in html and 'data-certainty="clear"' in html


def test_hsts_only_when_the_deployment_says_it_serves_https(classifier, monkeypatch):
    """Strict-Transport-Security would make browsers refuse plain HTTP for a year: only with FIREWATCH_HSTS=1, which
    the stack sets only with a certificate (HTTPS, HTTP redirected)."""
    from web_app import create_app

    monkeypatch.delenv("FIREWATCH_HSTS", raising=False)
    assert "Strict-Transport-Security" not in create_app(classifier).test_client().get("/healthz").headers
    monkeypatch.setenv("FIREWATCH_HSTS", "1")
    client = create_app(classifier).test_client()
    for path in ("/", "/healthz", "/nope"):
        assert client.get(path).headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_bad_hsts_setting_stops_the_app_with_its_name(classifier, monkeypatch):
    from web_app import create_app

    monkeypatch.setenv("FIREWATCH_HSTS", "yes")
    with pytest.raises(ValueError, match="FIREWATCH_HSTS must be 1"):
        create_app(classifier)


def test_the_servers_own_errors_carry_hsts_when_configured(monkeypatch):
    import socket

    from web_app.worker import write_error

    monkeypatch.setenv("FIREWATCH_HSTS", "1")
    ours, theirs = socket.socketpair()
    with ours, theirs:
        write_error(ours, 431, "Request Header Fields Too Large", "")
        head = theirs.recv(65536).decode("latin-1").split("\r\n\r\n")[0]
    assert "Strict-Transport-Security: max-age=31536000" in head.splitlines()


class ProbabilityOnly:
    """A runtime without a map output (models exported before the map had none)."""

    def predict(self, images):
        import numpy as np

        return np.full(len(images), 0.5)


def test_the_page_asks_for_fire_maps_only_when_the_model_has_them(client, classifier):
    html = client.get("/").get_data(as_text=True)
    assert 'data-map-api="/api/v1/classify?map=1"' in html
    assert re.search(r'<div class="fire-map-controls" hidden>\s*<button type="button" class="map-toggle" aria-pressed="false">'
                     r"Show where</button>", html), "a real toggle button, hidden until a map arrives"
    assert "firemap.js" in html
    without = create_app(Classifier(classifier.card, ProbabilityOnly())).test_client().get("/").get_data(as_text=True)
    assert "data-map-api" not in without and 'data-api="/api/v1/classify"' in without
