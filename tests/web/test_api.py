"""The JSON API with Flask's test client: every route, every error status, real photos and broken files."""

from __future__ import annotations

import io

import pytest

from inference import Classifier, Limits
from tests.conftest import MODEL_PATH
from tests.core import images
from web_app import create_app

ERROR_KEYS = {"code", "message"}


def upload(client, data: bytes, name: str = "photo.jpg", field: str = "image"):
    return client.post("/api/v1/classify", data={field: (io.BytesIO(data), name)}, content_type="multipart/form-data")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["message"].strip()
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


def test_healthz_reports_the_model_version(client, classifier):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "model_version": classifier.version}


@pytest.mark.parametrize("photo", ["fire_photo", "nofire_photo"])
def test_classify_returns_what_the_core_returns(client, classifier, photo, request):
    path = request.getfixturevalue(photo)
    data = path.read_bytes()
    response = upload(client, data, name=path.name)
    assert response.status_code == 200
    prediction = classifier.classify(data)
    assert response.get_json() == prediction.to_dict(path.name, with_certainty=True)
    # The CLI's object first, unchanged; how sure the verdict is comes after.
    assert list(response.get_json()) == ["source", "label", "fire_probability", "model_version", "threshold", "margin",
                                         "certainty"]  # fmt: skip
    assert response.get_json()["threshold"] == classifier.threshold
    assert response.get_json()["certainty"] == prediction.certainty in ("clear", "borderline")
    assert response.headers["Server-Timing"].startswith("classify;dur=")


def test_format_is_sniffed_from_the_bytes_not_the_name(client, classifier, fire_photo):
    data = fire_photo.read_bytes()
    as_text = upload(client, data, name="notes.txt")
    assert as_text.status_code == 200
    assert as_text.get_json()["fire_probability"] == classifier.classify(data).fire_probability
    assert_error(upload(client, b"just some text, not a photo\n", name="fake.jpg"), 415, "unsupported_format")


def test_source_is_the_file_name_without_client_folders(client, nofire_photo):
    response = upload(client, nofire_photo.read_bytes(), name="../../Pictures/camp.jpg")
    assert response.get_json()["source"] == "camp.jpg"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "empty_file"),
        (b"%PDF-1.7\n" + b"0" * 200, 415, "unsupported_format"),
        (images.png_with_header_size(10_000, 10_000), 422, "too_many_pixels"),
        (images.encode(images.solid(size=(300, 200)), "JPEG")[:400], 422, "corrupt_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 422, "corrupt_image"),
    ],
    ids=["empty", "pdf", "pixel-bomb-header", "truncated-jpeg", "damaged-png"],
)
def test_unreadable_images_get_their_core_code(client, classifier, data, status, code):
    error = assert_error(upload(client, data, name="bad.jpg"), status, code)
    try:
        classifier.classify(data)
    except Exception as core_error:  # the API reports exactly the core's verdict on the bytes
        assert error["code"] == core_error.code
    else:
        pytest.fail("the core accepted a file the API rejected")


def test_missing_file_is_400(client):
    assert_error(client.post("/api/v1/classify", data={}, content_type="multipart/form-data"), 400, "missing_file")
    assert_error(client.post("/api/v1/classify", data={"other": (io.BytesIO(b"x"), "x.jpg")}), 400, "missing_file")


def test_text_field_instead_of_file_is_400(client):
    response = client.post("/api/v1/classify", data={"image": "hello"}, content_type="multipart/form-data")
    error = assert_error(response, 400, "missing_file")
    assert "file" in error["message"]


@pytest.mark.parametrize(
    "kwargs",
    [{"json": {"image": "aGVsbG8="}}, {"data": b"\xff\xd8\xff", "content_type": "image/jpeg"}, {}],
    ids=["json", "raw-bytes", "no-body"],
)
def test_not_a_multipart_form_is_400(client, kwargs):
    assert_error(client.post("/api/v1/classify", **kwargs), 400, "bad_request")


def test_two_files_in_one_request_is_400(client, fire_photo, nofire_photo):
    data = {"image": [(io.BytesIO(fire_photo.read_bytes()), "a.jpg"), (io.BytesIO(nofire_photo.read_bytes()), "b.jpg")]}
    assert_error(client.post("/api/v1/classify", data=data), 400, "bad_request")


@pytest.fixture(scope="module")
def small_limit_app():
    """The real model with a 50 KB byte limit, so 413s need no big uploads."""
    return create_app(Classifier.load(MODEL_PATH, limits=Limits(max_bytes=50_000)))


def test_body_over_the_request_limit_is_413_json(small_limit_app):
    client = small_limit_app.test_client()
    limit = small_limit_app.config["MAX_CONTENT_LENGTH"]
    error = assert_error(upload(client, b"\xff\xd8\xff" + b"\x00" * limit, name="huge.jpg"), 413, "too_large")
    assert "50,000" in error["message"]


def test_file_over_the_core_limit_but_within_form_overhead_is_413(small_limit_app, fire_photo):
    client = small_limit_app.test_client()
    data = fire_photo.read_bytes() + b"\x00" * 50_000  # over 50,000 bytes, under MAX_CONTENT_LENGTH
    assert len(data) < small_limit_app.config["MAX_CONTENT_LENGTH"]
    assert_error(upload(client, data), 413, "too_large")


def test_too_many_form_parts_is_413_with_its_own_message(web_app):
    parts = web_app.config["MAX_FORM_PARTS"]
    data = {f"note{i}": "x" for i in range(parts + 1)}
    response = web_app.test_client().post("/api/v1/classify", data=data, content_type="multipart/form-data")
    error = assert_error(response, 413, "too_many_parts")
    assert f"more than {parts} parts" in error["message"] and "larger than" not in error["message"]


def test_too_many_form_parts_is_413_too_many_parts_in_a_chunked_body_too(web_app):
    """No Content-Length to go by: what tells the form's limit from the body's is where Werkzeug refused it."""
    parts = web_app.config["MAX_FORM_PARTS"]
    body = b"".join(b'--b\r\nContent-Disposition: form-data; name="note%d"\r\n\r\nx\r\n' % i
                    for i in range(parts + 1)) + b"--b--\r\n"
    response = web_app.test_client().post(
        "/api/v1/classify", input_stream=io.BytesIO(body),
        headers={"Content-Type": "multipart/form-data; boundary=b", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})  # as gunicorn says of a chunked body
    assert_error(response, 413, "too_many_parts")


def test_a_chunked_body_over_the_limit_is_413_too_large(web_app):
    body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    body += b"x" * (web_app.config["MAX_CONTENT_LENGTH"] + 1) + b"\r\n--b--\r\n"
    response = web_app.test_client().post(
        "/api/v1/classify", input_stream=io.BytesIO(body),
        headers={"Content-Type": "multipart/form-data; boundary=b", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})  # as gunicorn says of a chunked body
    assert_error(response, 413, "too_large")


def test_a_part_header_that_is_not_utf8_is_a_specific_400(client, fire_photo):
    """Werkzeug drops the whole form over one such header (a file name in Latin-1, as curl sends it from a Latin-1
    shell); the client is told why, not that no photo was sent."""
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="caf\xe9.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + fire_photo.read_bytes() + b"\r\n--b--\r\n")
    response = client.post("/api/v1/classify", data=body, content_type="multipart/form-data; boundary=b")
    error = assert_error(response, 400, "bad_request")
    assert "UTF-8" in error["message"]


def test_a_form_cut_short_is_a_400_not_a_missing_photo(client):
    body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\nabc'  # no closing boundary
    response = client.post("/api/v1/classify", data=body, content_type="multipart/form-data; boundary=b")
    assert_error(response, 400, "bad_request")


def test_the_test_clients_forms_have_boundaries_the_app_accepts(client, fire_photo, monkeypatch):
    """Even when random() prints at its longest, which made Werkzeug's own boundary too long now and then."""
    import werkzeug.test

    monkeypatch.setattr(werkzeug.test, "random", lambda: 0.00012345678901234567, raising=False)
    response = client.post("/api/v1/classify", data={"image": (io.BytesIO(fire_photo.read_bytes()), "a.jpg")},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)


def test_request_limit_follows_the_core_byte_limit(web_app, classifier):
    limit = web_app.config["MAX_CONTENT_LENGTH"]
    assert classifier.limits.max_bytes < limit <= classifier.limits.max_bytes + 128 * 1024


def test_model_card(client, classifier):
    response = client.get("/api/v1/model")
    assert response.status_code == 200
    assert response.get_json() == classifier.card.raw


def test_openapi_document_lists_every_route_and_error_status(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/v1/classify", "/api/v1/results", "/api/v1/model", "/api/v1/openapi.json", "/healthz"
    }
    statuses = set(document["paths"]["/api/v1/classify"]["post"]["responses"])
    assert statuses == {"200", "400", "408", "409", "413", "415", "422", "503"}


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v2/classify", "/api/"])
def test_unknown_api_paths_are_404_json(client, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [("get", "/api/v1/classify"), ("delete", "/api/v1/model"), ("put", "/healthz")])
def test_wrong_method_is_405_json_with_allow(client, method, path):
    response = getattr(client, method)(path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"]


class FailingClassifier(Classifier):
    """The real classifier whose inference breaks, to see what clients get from an unexpected error."""

    def classify(self, data: bytes):
        raise RuntimeError("secret internal detail /srv/model")


def test_unexpected_errors_are_500_without_details(fire_photo, caplog):
    app = create_app(FailingClassifier.load(MODEL_PATH))
    client = app.test_client()
    response = upload(client, fire_photo.read_bytes())
    assert_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)
    assert "secret internal detail" in caplog.text  # but operators see it in the log

    page = client.post("/", data={"image": (io.BytesIO(fire_photo.read_bytes()), "a.jpg")})
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "secret" not in page.get_data(as_text=True)


@pytest.mark.parametrize("code", ["too_many_pixels", "unsupported_format", "too_large"])
def test_the_cores_error_reaches_the_one_error_handler_with_its_contract_status(classifier, code):
    from inference import InvalidImage
    from inference.contract import http_status

    app = create_app(classifier)

    @app.get("/api/v1/raises")
    def raises():
        raise InvalidImage(code, "as the core said it")  # no translation on the way: the handler maps the code

    error = assert_error(app.test_client().get("/api/v1/raises"), http_status(code), code)
    assert error["message"] == "as the core said it"


def test_map_parameter_adds_the_fire_map_and_leaves_the_verdict_alone(client, classifier, fire_photo):
    data = fire_photo.read_bytes()
    plain = upload(client, data).get_json()
    response = client.post("/api/v1/classify?map=1", data={"image": (io.BytesIO(data), "photo.jpg")})
    assert response.status_code == 200
    body = response.get_json()
    assert body == classifier.classify(data, with_map=True).to_dict("photo.jpg", with_certainty=True)
    assert {key: body[key] for key in plain} == plain
    assert body["fire_map_grid"] == [10, 10] and len(body["fire_map"]) == 10 and len(body["fire_map"][0]) == 10
    for off in ("0", "false"):
        answer = client.post(f"/api/v1/classify?map={off}", data={"image": (io.BytesIO(data), "photo.jpg")})
        assert list(answer.get_json()) == list(plain)


def test_a_map_value_that_is_not_a_flag_is_400(client, fire_photo):
    response = client.post("/api/v1/classify?map=yes", data={"image": (io.BytesIO(fire_photo.read_bytes()), "photo.jpg")})
    assert "map" in assert_error(response, 400, "bad_request")["message"]


class ProbabilityOnly:
    """A runtime without a map output (models exported before the map had none)."""

    def predict(self, images):
        import numpy as np

        return np.full(len(images), 0.5)


def test_map_from_a_model_without_one_is_409_and_the_verdict_still_works(classifier, fire_photo):
    app = create_app(Classifier(classifier.card, ProbabilityOnly()))
    client = app.test_client()
    data = fire_photo.read_bytes()
    response = client.post("/api/v1/classify?map=1", data={"image": (io.BytesIO(data), "photo.jpg")})
    assert "fire map" in assert_error(response, 409, "map_unavailable")["message"]
    assert upload(client, data).get_json()["fire_probability"] == 0.5
    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Classification"]
    assert "none" in schema["properties"]["fire_map"]["description"]


def test_openapi_documents_the_map_with_the_model_s_grid(client):
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/classify"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["map"]
    assert "409" in operation["responses"] and "map_unavailable" in operation["responses"]["409"]["description"]
    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Classification"]
    fire_map = schema["properties"]["fire_map"]
    assert fire_map["minItems"] == fire_map["maxItems"] == 10 and fire_map["items"]["maxItems"] == 10
    assert "fire_map" not in schema["required"] and "fire_map_grid" not in schema["required"], "only with ?map=1"


def multipart(boundary: str, data: bytes, field: str = "image") -> bytes:
    """One file part framed by ``boundary``, written by hand: the test client always picks its own boundary."""
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="photo.jpg"\r\n\r\n'
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode()


def post_with_boundary(client, boundary: str, data: bytes):
    content_type = f'multipart/form-data; boundary="{boundary}"'
    return client.post("/api/v1/classify", data=multipart(boundary, data), content_type=content_type)


@pytest.mark.parametrize("boundary", [
    "----WebKitFormBoundary7MA4YWxkTrZu0gW",  # Chrome, Safari, Edge
    "----geckoformboundary" + "9f" * 16,  # Firefox
    "-" * 24 + "4d2f9a1c0b7e5d3a8c6f10",  # curl
    "7a3f" * 8,  # requests, urllib3
    "=" * 15 + "7123456789012345678==",  # Python's email package
    "a1" * 30,  # Go's mime/multipart
    "'()+_,-./:=? " * 5 + "aZ09x",  # every character RFC 2046 allows, 70 of them, a space inside
], ids=["chrome", "firefox", "curl", "requests", "python-email", "go", "rfc-2046-longest"])
def test_every_common_client_s_multipart_boundary_is_read(client, classifier, fire_photo, boundary):
    response = post_with_boundary(client, boundary, fire_photo.read_bytes())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["fire_probability"] == classifier.classify(fire_photo.read_bytes()).fire_probability


@pytest.mark.parametrize("boundary", ["b" * 71, "b" * 8000, "caf\u00e9", "ends-in-a-space "],
                         ids=["71-chars", "8000-chars", "not-ascii", "trailing-space"])
def test_a_multipart_boundary_outside_rfc_2046_is_400_before_the_form_is_read(client, fire_photo, boundary):
    # Werkzeug compiles two regular expressions from each request's boundary, at a cost that grows with its length
    # (an 8 KB boundary costs more CPU than classifying the photo): refused before the form is parsed.
    error = assert_error(post_with_boundary(client, boundary, fire_photo.read_bytes()), 400, "bad_request")
    assert "boundary" in error["message"] and "70" in error["message"]


def test_a_multipart_form_without_a_boundary_is_400(client):
    response = client.post("/api/v1/classify", data=b"--x\r\n\r\n--x--\r\n", content_type="multipart/form-data")
    assert "boundary" in assert_error(response, 400, "bad_request")["message"]
