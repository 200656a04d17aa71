"""The OpenAPI document checked against the real app by schemathesis (WSGI, no server needed)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from inference import Classifier
from tests.conftest import MODEL_PATH
from web_app import create_app

# Loaded at collection: schemathesis 4.32's lazy `from_fixture` fails under pytest 9 ("no attribute '_nodeid'").
# The app is cheap to build (the model loads in ~10 ms).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", create_app(Classifier.load(MODEL_PATH)))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    # Any bytes match `format: binary`, yet only real photos get a 200 (random bytes get a documented
    # 415/422); real photos are covered in test_api.py, so "schema-valid data must be accepted" is skipped.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_a_real_verdict_matches_the_documented_classification(fire_photo, nofire_photo):
    import io

    import jsonschema

    classifier = Classifier.load(MODEL_PATH)
    client = create_app(classifier).test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    classification = document["components"]["schemas"]["Classification"]
    assert {"threshold", "margin", "certainty"} <= set(classification["required"])
    assert classification["properties"]["certainty"]["enum"] == ["clear", "borderline"]
    low, high = classifier.borderline_band
    assert f"between {low:.3f} and {high:.3f}" in classification["properties"]["certainty"]["description"]
    for photo in (fire_photo, nofire_photo):
        body = client.post("/api/v1/classify", data={"image": (io.BytesIO(photo.read_bytes()), photo.name)}).get_json()
        jsonschema.validate(body, classification)  # additionalProperties: false, so every field is documented
