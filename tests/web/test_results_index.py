"""GET /api/v1/results and the panel from the results index (moto's DynamoDB): newest first across days, limits,
cursors, a bounded walk over empty days, tampered cursors."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta, timezone

import boto3
import jsonschema
import pytest
from moto import mock_aws

from inference.contract import (
    INDEX_KEY, NEWEST_INDEX, NEWEST_PARTITION, NEWEST_SORT, index_day, result_key_for, results_table_definition,
)  # fmt: skip
from tests.conftest import throwaway_aws
from web_app import create_app
from web_app.results_index import IndexReader, decode_cursor, encode_cursor

TABLE, BUCKET = "firewatch-test-results", "firewatch-test-uploads"
TODAY = date(2026, 3, 10)


@pytest.fixture
def dynamodb(monkeypatch):
    throwaway_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**results_table_definition(TABLE))
        yield client


def put_item(client, name: str, at: datetime, label: str = "nofire", probability: float = 0.1) -> None:
    key = f"uploads/{name}"
    classified_at = at.isoformat()
    item = {
        INDEX_KEY: {"S": key}, NEWEST_PARTITION: {"S": index_day(classified_at)}, NEWEST_SORT: {"S": classified_at},
        "result_key": {"S": result_key_for(key)}, "source": {"S": f"s3://{BUCKET}/{key}"}, "label": {"S": label},
        "fire_probability": {"N": str(probability)}, "model_version": {"S": "test-1"}, "bucket": {"S": BUCKET},
        "size": {"N": "1234"}, "etag": {"S": "abc"}, "version_id": {"S": "v1"}, "expires_at": {"N": "1900000000"},
    }  # fmt: skip
    client.put_item(TableName=TABLE, Item=item)


def at_day(days_ago: int, hour: int, minute: int = 0) -> datetime:
    return datetime(TODAY.year, TODAY.month, TODAY.day, hour, minute, tzinfo=timezone.utc) - timedelta(days=days_ago)


def reader(**options) -> IndexReader:
    return IndexReader(TABLE, BUCKET, today=lambda: TODAY, **options)


def app_client(classifier, **options):
    app = create_app(classifier, {"RESULTS_TABLE": TABLE, "RESULTS_BUCKET": BUCKET})
    app.config["TESTING"] = True
    app.extensions["firewatch.results"] = reader(**options)  # a fixed "today"
    return app.test_client()


def names(results: list[dict]) -> list[str]:
    return [r["name"] for r in results]


def test_newest_first_across_several_days(dynamodb, classifier):
    put_item(dynamodb, "old.jpg", at_day(3, 9))
    put_item(dynamodb, "today-early.jpg", at_day(0, 1))
    put_item(dynamodb, "yesterday.jpg", at_day(1, 23, 59))
    put_item(dynamodb, "today-late.jpg", at_day(0, 22), "fire", 0.97)
    body = app_client(classifier).get("/api/v1/results").get_json()
    assert names(body["results"]) == ["today-late.jpg", "today-early.jpg", "yesterday.jpg", "old.jpg"]
    newest = body["results"][0]
    assert newest["label"] == "fire" and newest["fire_probability"] == 0.97 and newest["size"] == 1234
    assert newest["result_key"] == "results/today-late.jpg.json" and newest["key"] == "uploads/today-late.jpg"
    assert body["table"] == TABLE and body["bucket"] == BUCKET
    assert "last_modified" not in newest and "expires_at" not in newest  # not a public field


def test_limit_and_cursor_round_trip_visit_every_result_once(dynamodb, classifier):
    expected = []
    for days_ago in range(4):
        for hour in (20, 10, 5):
            name = f"d{days_ago}-h{hour:02}.jpg"
            put_item(dynamodb, name, at_day(days_ago, hour))
            expected.append(name)
    client = app_client(classifier, horizon_days=10)  # past the data: 7 empty days a page, then the end
    seen, cursor, requests = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get("/api/v1/results" + query).get_json()
        requests += 1
        assert len(body["results"]) <= 2
        seen += names(body["results"])
        cursor = body["next_cursor"]
        if cursor is None or requests > 40:
            break
    assert seen == expected  # newest first, none twice, none missed (days split across pages)
    assert requests <= 6 + 2  # six pages of results; the empty days to the horizon take one or two more


def test_default_limit_is_twenty_and_largest_is_a_hundred(dynamodb, classifier):
    for minute in range(25):
        put_item(dynamodb, f"{minute:02}.jpg", at_day(0, 12, minute))
    client = app_client(classifier)
    assert len(client.get("/api/v1/results").get_json()["results"]) == 20
    assert len(client.get("/api/v1/results?limit=100").get_json()["results"]) == 25
    assert client.get("/api/v1/results?limit=101").status_code == 400


def test_empty_days_looked_at_per_request_are_bounded(dynamodb):
    put_item(dynamodb, "long-ago.jpg", at_day(20, 8))
    calls = []
    index = reader(lookback_days=7)
    index.client.meta.events.register("provide-client-params.dynamodb.Query", lambda params, **_: calls.append(params))
    first = index.page(10)
    assert first.results == [] and len(calls) == 7  # today and six days before, then a cursor
    assert decode_cursor(first.next_cursor) == ((TODAY - timedelta(days=7)).isoformat(), None)
    second = index.page(10, first.next_cursor)
    assert second.results == [] and len(calls) == 14
    third = index.page(10, second.next_cursor)
    assert names(third.results) == ["long-ago.jpg"]
    assert {call["IndexName"] for call in calls} == {NEWEST_INDEX} and all(not call["ScanIndexForward"] for call in calls)


def test_the_walk_ends_at_the_horizon(dynamodb):
    put_item(dynamodb, "recent.jpg", at_day(1, 8))
    page = reader(lookback_days=30, horizon_days=3).page(10)
    assert names(page.results) == ["recent.jpg"] and page.next_cursor is None


def test_a_slow_table_gets_a_cursor_not_a_long_wait(dynamodb):
    put_item(dynamodb, "old.jpg", at_day(5, 8))
    ticks = iter(range(100))
    page = reader(deadline_seconds=2.5, clock=lambda: next(ticks)).page(10)  # each clock read is one second later
    assert page.results == [] and page.next_cursor is not None
    # Read at 0 s (start), 1 s, 2 s, 3 s: three days queried, the third past the deadline; the cursor is the fourth.
    assert decode_cursor(page.next_cursor)[0] == (TODAY - timedelta(days=3)).isoformat()


def _tampered() -> list[str]:
    valid_after = {INDEX_KEY: {"S": "uploads/a.jpg"}, NEWEST_PARTITION: {"S": "2026-03-09"}, NEWEST_SORT: {"S": "x"}}

    def raw(payload) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()

    good = encode_cursor("2026-03-09", valid_after)
    return [
        good[:-3],  # truncated
        good + "!",  # not base64url
        raw(["2026-03-09"]),
        raw({"day": "2026-02-30"}),
        raw({"day": "yesterday"}),
        raw({"day": "2026-03-09", "extra": 1}),
        raw({"day": "2026-03-08", "after": valid_after}),  # position outside its day
        raw({"day": "2026-03-09", "after": {**valid_after, "other": {"S": "x"}}}),
        raw({"day": "2026-03-09", "after": {**valid_after, INDEX_KEY: {"N": "1"}}}),
        "A" * 5000,
    ]


@pytest.mark.parametrize("cursor", _tampered())
def test_tampered_cursor_is_400(dynamodb, classifier, cursor):
    response = app_client(classifier).get("/api/v1/results", query_string={"cursor": cursor})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "bad_request" and "cursor" in response.get_json()["error"]["message"]


def test_cursor_is_refused_without_the_index(classifier):
    app = create_app(classifier, {"RESULTS_BUCKET": BUCKET, "RESULTS_TABLE": None})
    response = app.test_client().get("/api/v1/results?cursor=" + encode_cursor("2026-03-09", None))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_request"


def test_missing_table_is_503(dynamodb, classifier, caplog):
    app = create_app(classifier, {"RESULTS_TABLE": "no-such-table"})
    response = app.test_client().get("/api/v1/results")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "results_unavailable"
    assert "ResourceNotFoundException" in caplog.text


def test_items_that_are_not_results_are_skipped(dynamodb):
    put_item(dynamodb, "good.jpg", at_day(0, 8))
    dynamodb.put_item(TableName=TABLE, Item={INDEX_KEY: {"S": "uploads/odd.jpg"}, NEWEST_PARTITION: {"S": TODAY.isoformat()},
                                             NEWEST_SORT: {"S": at_day(0, 9).isoformat()}, "label": {"S": "fire"}})  # fmt: skip
    assert names(reader().page(5).results) == ["good.jpg"]


def test_table_comes_from_the_environment(classifier, monkeypatch):
    monkeypatch.setenv("FIREWATCH_RESULTS_TABLE", "from-env")
    monkeypatch.setenv("FIREWATCH_RESULTS_BUCKET", "bucket-from-env")
    found = create_app(classifier).extensions["firewatch.results"]
    assert isinstance(found, IndexReader) and found.table == "from-env" and found.bucket == "bucket-from-env"


def test_page_panel_and_openapi_with_the_index(dynamodb, classifier):
    put_item(dynamodb, "ridge-fire.jpg", at_day(0, 8), "fire", 0.973)
    client = app_client(classifier)
    html = client.get("/").get_data(as_text=True)
    assert "ridge-fire.jpg" in html and "97.3% fire probability" in html and "Showing the 1 latest result." in html
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/results"]["get"]
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["default"], limit["maximum"]) == (20, 100)
    assert any(p["name"] == "cursor" for p in operation["parameters"])
    schema = {"$ref": "#/components/schemas/PipelineResults", "components": document["components"]}
    jsonschema.validate(client.get("/api/v1/results?limit=1").get_json(), schema)


def test_reads_the_items_the_function_writes(dynamodb, classifier):
    """The function's writer (lambda_image.results_index) and this reader agree on the item."""
    from inference.contract import ServerlessResult
    from lambda_image.results_index import ResultsIndex

    key = "uploads/camera 1/ridge.jpg"
    result = ServerlessResult(
        verdict={"source": f"s3://{BUCKET}/{key}", "label": "fire", "fire_probability": 0.875, "model_version": "m1"},
        bucket=BUCKET, key=key, size=4321, etag="abc", classified_at=at_day(0, 7).isoformat(), version_id="v1",
        sequencer="0055AED6DCD90281E5", alert="sent", alert_message_id="msg-1",
    )  # fmt: skip
    ResultsIndex(dynamodb, TABLE, ttl_days=30).put(result.to_record(), result_key_for(key))
    [record] = reader().page(5).results
    assert record == {
        "result_key": "results/camera 1/ridge.jpg.json", "name": "ridge.jpg", "source": f"s3://{BUCKET}/{key}",
        "bucket": BUCKET, "key": key, "size": 4321, "etag": "abc", "model_version": "m1",
        "classified_at": at_day(0, 7).isoformat(), "label": "fire", "fire_probability": 0.875,
    }  # fmt: skip


def test_an_unreachable_endpoint_is_a_503_within_the_client_timeouts(classifier, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}.items():  # nothing listens on port 9  # fmt: skip
        monkeypatch.setenv(name, value)
    client = create_app(classifier, {"RESULTS_TABLE": TABLE}).test_client()
    response = client.get("/api/v1/results")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "results_unavailable"
    page = client.get("/")
    assert page.status_code == 200 and "cannot be read right now" in page.get_data(as_text=True)


@pytest.mark.parametrize("raw", ["0", "abc", "-3", "9999", "2.5"])
def test_a_bad_lookback_setting_stops_the_app_with_what_is_allowed(classifier, monkeypatch, raw):
    monkeypatch.setenv("FIREWATCH_RESULTS_LOOKBACK_DAYS", raw)
    with pytest.raises(ValueError, match="FIREWATCH_RESULTS_LOOKBACK_DAYS must be a whole number of days from 1 to 366"):
        create_app(classifier, {"RESULTS_TABLE": TABLE})


def test_the_lookback_setting_reaches_the_reader(classifier, monkeypatch):
    monkeypatch.setenv("FIREWATCH_RESULTS_LOOKBACK_DAYS", "30")
    assert create_app(classifier, {"RESULTS_TABLE": TABLE}).extensions["firewatch.results"].lookback_days == 30
