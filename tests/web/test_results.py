"""The serverless results panel and GET /api/v1/results, against moto's S3 (no network, no AWS account)."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import boto3
import jsonschema
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from tests.conftest import throwaway_aws
from web_app import create_app
from web_app.results import MAX_OBJECT_BYTES, ResultsLoading, ResultsReader

BUCKET = "firewatch-test-uploads"
T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
PANEL_TITLE = "Latest from the serverless pipeline"


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 with one bucket; throwaway credentials, and no endpoint override from the environment."""
    throwaway_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def app_for(classifier, bucket: str | None):
    app = create_app(classifier, {"RESULTS_BUCKET": bucket})
    app.config["TESTING"] = True
    reader = app.extensions.get("firewatch.results")
    if reader is not None:
        # These tests are about what is listed, not how long a request waits: on a loaded test machine moto can take
        # longer than the production 1 s to answer, and the request would get 503 "still loading" instead.
        reader.wait_seconds = 30.0
    return app


@pytest.fixture
def client(classifier, s3):
    return app_for(classifier, BUCKET).test_client()


def verdict(name: str, label: str, probability: float, at: datetime) -> dict:
    key = f"uploads/{name}"
    return {
        "source": f"s3://{BUCKET}/{key}", "label": label, "fire_probability": probability, "model_version": "test-1",
        "bucket": BUCKET, "key": key, "size": 1234, "etag": '"abc"', "classified_at": at.isoformat(),
    }


def failure(name: str, at: datetime) -> dict:
    key = f"uploads/{name}"
    return {
        "source": f"s3://{BUCKET}/{key}",
        "error": {"code": "unsupported_format", "message": "The file is not an image this service can read."},
        "bucket": BUCKET, "key": key, "size": 12, "etag": '"def"', "classified_at": at.isoformat(),
    }


def put(s3, key: str, body, at: datetime) -> None:
    """Store an object whose S3 LastModified is ``at`` (moto stamps "now"; the panel orders by this time)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[BUCKET].keys[key].last_modified = at.replace(tzinfo=None)


def put_result(s3, record: dict, at: datetime) -> None:
    put(s3, "results/" + record["key"].removeprefix("uploads/") + ".json", record, at)


def get_results(client, query: str = ""):
    response = client.get("/api/v1/results" + query)
    assert response.mimetype == "application/json"
    return response


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code and body["error"]["message"].strip()
    assert "Traceback" not in response.get_data(as_text=True)


def test_results_are_listed_newest_first_and_limit_is_honoured(client, s3):
    # Key names sort in another order than times: the listing must order by LastModified.
    put_result(s3, verdict("a-oldest.jpg", "nofire", 0.02, T0), T0)
    put_result(s3, verdict("z-newest.jpg", "fire", 0.97, T0 + timedelta(seconds=30)), T0 + timedelta(seconds=30))
    put_result(s3, failure("m-broken.txt", T0 + timedelta(seconds=20)), T0 + timedelta(seconds=20))
    put_result(s3, verdict("camp/b-middle.jpg", "nofire", 0.1, T0 + timedelta(seconds=10)), T0 + timedelta(seconds=10))
    put(s3, "uploads/z-newest.jpg", b"\xff\xd8\xff photo bytes", T0 + timedelta(minutes=5))  # not a result

    body = get_results(client, "?limit=3").get_json()
    assert body["bucket"] == BUCKET
    assert [r["name"] for r in body["results"]] == ["z-newest.jpg", "m-broken.txt", "b-middle.jpg"]
    newest, broken, middle = body["results"]
    assert newest["label"] == "fire" and newest["fire_probability"] == 0.97
    assert newest["result_key"] == "results/z-newest.jpg.json"
    assert newest["source"] == f"s3://{BUCKET}/uploads/z-newest.jpg" and newest["model_version"] == "test-1"
    assert datetime.fromisoformat(newest["last_modified"]) == T0 + timedelta(seconds=30)
    assert broken["error"] == failure("x", T0)["error"] and "label" not in broken
    assert middle["key"] == "uploads/camp/b-middle.jpg"

    everything = get_results(client).get_json()["results"]
    assert [r["name"] for r in everything] == ["z-newest.jpg", "m-broken.txt", "b-middle.jpg", "a-oldest.jpg"]


def test_default_limit_is_ten(client, s3):
    for i in range(12):
        put_result(s3, verdict(f"{i:02}.jpg", "nofire", 0.01, T0), T0 + timedelta(seconds=i))
    names = [r["name"] for r in get_results(client).get_json()["results"]]
    assert names == [f"{i:02}.jpg" for i in range(11, 1, -1)]


def test_same_second_results_are_ordered_by_their_own_time(client, s3):
    for i, name in enumerate(["b.jpg", "c.jpg", "a.jpg"]):
        put_result(s3, verdict(name, "nofire", 0.01, T0 + timedelta(milliseconds=100 * i)), T0)
    assert [r["name"] for r in get_results(client).get_json()["results"]] == ["a.jpg", "c.jpg", "b.jpg"]


@pytest.mark.parametrize("limit", ["0", "51", "-1", "abc", "", "2.5", "1e1", "99999999999999999999"])
def test_bad_limit_is_400(client, limit):
    assert_error(get_results(client, f"?limit={limit}"), 400, "bad_request")


def test_largest_limit_is_accepted(client, s3):
    put_result(s3, verdict("one.jpg", "fire", 0.9, T0), T0)
    assert get_results(client, "?limit=50").status_code == 200


def test_objects_that_are_not_results_are_skipped(client, s3, caplog):
    put_result(s3, verdict("good.jpg", "fire", 0.8, T0), T0)
    put(s3, "results/not-json.jpg.json", b"<html>oops</html>", T0 + timedelta(seconds=1))
    put(s3, "results/binary.jpg.json", b"\xff\xfe\x00garbage", T0 + timedelta(seconds=2))
    put(s3, "results/list.jpg.json", [1, 2, 3], T0 + timedelta(seconds=3))
    put(s3, "results/no-verdict.jpg.json", {"source": "x", "label": "fire"}, T0 + timedelta(seconds=4))
    put(s3, "results/bad-prob.jpg.json", {"label": "fire", "fire_probability": 7}, T0 + timedelta(seconds=5))
    big = verdict("big.jpg", "fire", 0.5, T0) | {"padding": "x" * MAX_OBJECT_BYTES}
    put(s3, "results/big.jpg.json", big, T0 + timedelta(seconds=6))

    response = get_results(client, "?limit=1")  # the skipped newer objects make room for the older result
    assert response.status_code == 200
    assert [r["name"] for r in response.get_json()["results"]] == ["good.jpg"]
    assert "results/not-json.jpg.json: not a result object" in caplog.text
    assert "results/big.jpg.json" in caplog.text and "too large" in caplog.text


def test_results_match_the_openapi_document(client, s3):
    put_result(s3, verdict("fire.jpg", "fire", 0.97, T0), T0)
    put_result(s3, failure("notes.txt", T0), T0 + timedelta(seconds=1))
    document = client.get("/api/v1/openapi.json").get_json()
    schema = {"$ref": "#/components/schemas/PipelineResults", "components": document["components"]}
    body = get_results(client).get_json()
    assert len(body["results"]) == 2
    jsonschema.validate(body, schema)
    responses = document["paths"]["/api/v1/results"]["get"]["responses"]
    assert set(responses) == {"200", "400", "404", "503"}


def test_only_the_granted_s3_calls_are_made(classifier, s3):
    """The instance role allows s3:ListBucket on results/ and s3:GetObject on results/*, nothing more."""
    put_result(s3, verdict("fire.jpg", "fire", 0.97, T0), T0)
    put(s3, "uploads/fire.jpg", b"photo", T0)
    app = app_for(classifier, BUCKET)
    calls = []
    reader = app.extensions["firewatch.results"]
    reader.client.meta.events.register(
        "provide-client-params.s3.*", lambda params, model, **_: calls.append((model.name, params))
    )
    client = app.test_client()
    assert client.get("/").status_code == 200 and get_results(client).status_code == 200
    assert {name for name, _ in calls} == {"ListObjectsV2", "GetObject"}
    for name, params in calls:
        assert params["Bucket"] == BUCKET
        if name == "ListObjectsV2":
            assert params["Prefix"] == "results/"
        else:
            assert params["Key"].startswith("results/")


def test_listing_is_cached_briefly(s3):
    now = [100.0]
    reader = ResultsReader(BUCKET, clock=lambda: now[0])
    put_result(s3, verdict("first.jpg", "fire", 0.9, T0), T0)
    assert [r["name"] for r in reader.latest(5)] == ["first.jpg"]
    put_result(s3, verdict("second.jpg", "nofire", 0.1, T0 + timedelta(seconds=1)), T0 + timedelta(seconds=1))
    now[0] += 1.0
    assert [r["name"] for r in reader.latest(5)] == ["first.jpg"]  # still the cached listing
    now[0] += 1.5
    assert [r["name"] for r in reader.latest(5)] == ["second.jpg", "first.jpg"]


def test_disabled_feature_has_no_panel_and_the_api_says_so(classifier, monkeypatch):
    monkeypatch.delenv("FIREWATCH_RESULTS_BUCKET", raising=False)
    client = app_for(classifier, None).test_client()
    assert_error(get_results(client), 404, "results_disabled")
    html = client.get("/").get_data(as_text=True)
    assert PANEL_TITLE not in html and "<aside" not in html and "panel.js" not in html


def test_bucket_comes_from_the_environment(classifier, monkeypatch):
    monkeypatch.setenv("FIREWATCH_RESULTS_BUCKET", "from-env")
    assert create_app(classifier).extensions["firewatch.results"].bucket == "from-env"


def test_unreadable_bucket_is_503_and_a_friendly_panel(classifier, s3, caplog):
    client = app_for(classifier, "no-such-bucket-here").test_client()
    assert_error(get_results(client), 503, "results_unavailable")
    assert "NoSuchBucket" in caplog.text  # operators see why
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert PANEL_TITLE in html
    assert "cannot be read right now" in html and "NoSuchBucket" not in html and "Traceback" not in html


def test_unreachable_endpoint_is_503(classifier, s3, monkeypatch):
    # Nothing listens on port 9 (discard): the connection is refused at once.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    client = app_for(classifier, BUCKET).test_client()
    assert_error(get_results(client), 503, "results_unavailable")
    assert_error(get_results(client), 503, "results_unavailable")  # answered from the failure cache


def test_page_lists_the_results_in_an_accessible_panel(client, s3):
    put_result(s3, verdict("ridge-fire.jpg", "fire", 0.973, T0 + timedelta(seconds=2)), T0 + timedelta(seconds=2))
    put_result(s3, verdict("lake.jpg", "nofire", 0.021, T0 + timedelta(seconds=1)), T0 + timedelta(seconds=1))
    put_result(s3, failure("notes.txt", T0), T0)
    html = client.get("/").get_data(as_text=True)

    panel = html[html.index("<aside") : html.index("</aside>")]
    assert 'aria-labelledby="pipeline-title"' in panel and f'<h2 id="pipeline-title">{PANEL_TITLE}</h2>' in panel
    assert 'role="status" aria-live="polite"' in panel and "Showing the 3 latest results." in panel
    assert f"s3://{BUCKET}/uploads/" in panel
    feed = panel[panel.index('<ol id="pipeline-results"') : panel.index("</ol>")]
    items = re.findall(r'<li class="feed-item".*?</li>', feed, flags=re.S)
    assert [re.search(r'class="feed-name"[^>]*>([^<]*)<', item)[1] for item in items] == [
        "ridge-fire.jpg", "lake.jpg", "notes.txt"
    ]
    fire, lake, notes = items
    assert 'data-state="fire"' in fire and ">Fire<" in fire and "97.3% fire probability" in fire
    assert 'data-state="nofire"' in lake and ">No fire<" in lake and "2.1% fire probability" in lake
    assert 'data-state="error"' in notes and "Not classified" in notes and "not an image this service can read" in notes
    assert f'<time datetime="{T0.isoformat()}">2025-06-01 12:00:00 UTC</time>' in notes
    assert re.search(r'<script src="/static/panel.js" defer></script>', html)
    assert " style=" not in html and re.search(r"<script[^>]*>\s*[^<\s]", html) is None  # CSP: nothing inline


def test_empty_bucket_says_so(client):
    html = client.get("/").get_data(as_text=True)
    assert PANEL_TITLE in html and "No results yet" in html
    assert get_results(client).get_json() == {"bucket": BUCKET, "results": []}


class FakeS3:
    """Just the two S3 calls the reader makes, over ``objects`` {key: (LastModified, record)}; with ``hang``, the
    listing waits for that event first (an endpoint that does not answer)."""

    def __init__(self, objects: dict, hang=None) -> None:
        self.objects, self.hang = objects, hang
        self.listings = self.pages = 0
        self.listing_finished = False

    def get_paginator(self, name):
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket, Prefix, PaginationConfig):
        self.listings += 1
        if self.hang is not None:
            self.hang.wait(10)
        keys = sorted(k for k in self.objects if k.startswith(Prefix))[: PaginationConfig["MaxItems"]]
        size = PaginationConfig["PageSize"]
        for start in range(0, len(keys), size):
            self.pages += 1
            yield {"Contents": [{"Key": k, "LastModified": self.objects[k][0], "Size": 300, "ETag": f'"{k}"'}
                                for k in keys[start : start + size]]}
        self.listing_finished = True

    def get_object(self, Bucket, Key):
        return {"Body": io.BytesIO(json.dumps(self.objects[Key][1]).encode())}


def test_newest_is_found_among_more_keys_than_one_listing_returns():
    """Key names sort in another order than times: with 6,000 results the newest sorts last by name."""
    objects = {}
    for i in range(6000):
        at = T0 + timedelta(seconds=i)
        name = f"{i:05}.jpg" if i < 5999 else "zz-newest.jpg"
        objects[f"results/{name}.json"] = (at, verdict(name, "nofire", 0.1, at))
    fake = FakeS3(objects)
    reader = ResultsReader(BUCKET, client=fake)
    assert [r["name"] for r in reader.latest(3)] == ["zz-newest.jpg", "05998.jpg", "05997.jpg"]
    assert fake.pages == 6  # every page was read


def test_a_big_bucket_is_listed_less_often():
    objects = {f"results/{i:05}.jpg.json": (T0, verdict(f"{i:05}.jpg", "fire", 0.9, T0)) for i in range(3500)}
    fake, now = FakeS3(objects), [100.0]
    reader = ResultsReader(BUCKET, client=fake, clock=lambda: now[0])
    reader.latest(1)
    now[0] += 3.0  # past the 2 s of a one-page bucket, within the 4 s of this four-page one
    reader.latest(1)
    assert fake.listings == 1
    now[0] += 1.5
    reader.latest(1)
    assert fake.listings == 2


def test_the_page_does_not_wait_for_a_silent_s3(classifier):
    release = threading.Event()
    fake = FakeS3({"results/a.jpg.json": (T0, verdict("a.jpg", "fire", 0.9, T0))}, hang=release)
    app = app_for(classifier, BUCKET)
    reader = app.extensions["firewatch.results"] = ResultsReader(BUCKET, client=fake)
    reader.wait_seconds = 0.2
    threading.Timer(5.0, release.set).start()  # bounds the test if the page does wait
    try:
        page = app.test_client().get("/")
        answered_while_listing = fake.listings == 1 and not fake.listing_finished
        api = app.test_client().get("/api/v1/results")
    finally:
        release.set()
    assert page.status_code == 200 and answered_while_listing
    html = page.get_data(as_text=True)
    assert PANEL_TITLE in html and "Loading the pipeline" in html and " data-loading" in html  # panel.js asks at once
    assert_error(api, 503, "results_unavailable")
    assert fake.listings == 1  # the second request waited on the same listing, it did not start another


def test_a_starting_worker_reads_the_bucket_before_the_first_request(s3):
    put_result(s3, verdict("early.jpg", "fire", 0.9, T0), T0)
    reader = ResultsReader(BUCKET)
    reader.prefetch()
    reader.wait_seconds = 0  # answer from what the prefetch read, without waiting for another listing
    deadline = time.monotonic() + 10
    while True:
        try:
            assert [r["name"] for r in reader.latest()] == ["early.jpg"]
            break
        except ResultsLoading:
            assert time.monotonic() < deadline
            time.sleep(0.05)
