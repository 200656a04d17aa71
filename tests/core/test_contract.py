"""The shared contract (inference/contract.py): result keys within S3's limit, the result record's form, one HTTP
status per error code, and the names the parts share."""

from __future__ import annotations

import pytest

from inference import ERROR_CODES, Classifier
from inference.contract import (
    HTTP_STATUS_BY_CODE, LABELS, MAX_KEY_BYTES, ServerlessResult, result_key_for, upload_name_for,
)  # fmt: skip
from inference.errors import NOT_FOUND, UNREADABLE_FILE
from tests.conftest import MODEL_PATH


@pytest.mark.parametrize("name", ["a.jpg", "x" * (MAX_KEY_BYTES - len("uploads/")), "x" + "é" * 507, "🔥" * 253 + "ab"])
def test_result_keys_fit_in_s3s_limit(name):
    key = "uploads/" + name
    assert len(key.encode()) <= MAX_KEY_BYTES  # every key S3 can hold
    result_key = result_key_for(key)
    assert len(result_key.encode()) <= MAX_KEY_BYTES
    assert result_key.startswith("results/") and result_key.endswith(".json")


def test_result_keys_of_normal_keys_keep_the_contract():
    longest_plain = "uploads/" + "x" * (MAX_KEY_BYTES - len("results/") - len(".json"))
    assert result_key_for(longest_plain) == "results/" + longest_plain[len("uploads/") :] + ".json"
    assert len(result_key_for(longest_plain).encode()) == MAX_KEY_BYTES


def test_long_keys_that_share_a_beginning_get_distinct_result_keys():
    common = "uploads/" + "cam/" * 260
    first, second = result_key_for(common + "1.jpg"), result_key_for(common + "2.jpg")
    assert first != second
    assert first.startswith("results/cam/cam/") and "~" in first
    assert first[: -len("~" + "0" * 64 + ".json")] == second[: -len("~" + "0" * 64 + ".json")]



def test_upload_name_is_what_the_result_key_shows():
    assert upload_name_for(result_key_for("uploads/camp/a b.jpg")) == "camp/a b.jpg"


def test_a_result_record_keeps_the_contracts_key_order_and_omits_what_is_unset():
    verdict = {"source": "s3://b/uploads/a.jpg", "label": "fire", "fire_probability": 0.9, "model_version": "v"}
    result = ServerlessResult(verdict, "b", "uploads/a.jpg", 3, "e", "2026-01-01T00:00:00.000+00:00", sequencer="0A")
    assert list(result.to_record()) == [
        "source", "label", "fire_probability", "model_version", "bucket", "key", "size", "etag", "classified_at",
        "sequencer",
    ]  # fmt: skip


def test_every_core_error_a_request_can_cause_has_an_http_status():
    cli_only = {NOT_FOUND, UNREADABLE_FILE}  # paths on the command line; the API never reads a path
    assert set(ERROR_CODES) - cli_only <= set(HTTP_STATUS_BY_CODE)


def test_the_models_labels_are_the_contracts():
    assert tuple(Classifier.load(MODEL_PATH).card.labels) == LABELS


def test_the_shipped_card_reads_into_the_card_type_and_back():
    import json

    from inference import ModelCard

    raw = json.loads(MODEL_PATH.with_suffix(".json").read_text())
    card = ModelCard.load(MODEL_PATH.with_suffix(".json"))
    assert card.raw == raw, "served as read"
    written = card.to_dict()
    assert {key: written[key] for key in raw} == raw, "every key it has keeps its value"
    assert ModelCard.from_dict(written) == card


@pytest.mark.parametrize("broken, error", [({"threshold": None}, TypeError), ({"input": {"width": 0, "height": 9}}, ValueError)])
def test_a_card_without_what_serving_needs_is_refused(broken, error):
    import json

    from inference import ModelCard

    raw = json.loads(MODEL_PATH.with_suffix(".json").read_text())
    with pytest.raises(KeyError, match="version"):
        ModelCard.from_dict({k: v for k, v in raw.items() if k != "version"})
    with pytest.raises(error):
        ModelCard.from_dict(raw | broken)
