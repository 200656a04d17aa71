"""The OpenAPI 3.0 document of the JSON API, built from the loaded model's card and the shared contract.

Error codes, their statuses and the fields of a stored result come from ``inference.contract``, the same tables the
app answers and validates with, so the document cannot name a code or field the app does not use. Not generated
with pydantic: it is not in the image (requirements/serving.txt), would add about 10 MB installed for this one
document, and the types it would read are these flat tables already.
"""

from __future__ import annotations

import math

from inference import CERTAINTIES, Classifier
from inference.contract import (
    BAD_REQUEST, BUSY, HTTP_STATUS_BY_CODE, MAP_UNAVAILABLE, RESULT_FIELD_TYPES, RESULT_PREFIX, RESULTS_DISABLED,
    RESULTS_UNAVAILABLE,
)  # fmt: skip

from . import results, results_index

IMAGE_TYPES = "image/jpeg, image/png, image/webp, image/gif, image/bmp, application/octet-stream"


def _error_response(description: str, codes: list[str]) -> dict:
    return {
        "description": f"{description} Error codes: {', '.join(codes)}.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _codes_for(status: int) -> list[str]:
    return [code for code, code_status in HTTP_STATUS_BY_CODE.items() if code_status == status]


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _stored_result_fields() -> dict:
    """The contract fields a stored result passes on, typed as the reader checks them."""
    fields = {name: {"type": _JSON_TYPES[kind]} for name, kind in RESULT_FIELD_TYPES.items()}
    fields["classified_at"]["format"] = "date-time"
    return fields


def _fire_map_fields(classifier: Classifier) -> dict:
    """The two fields ``?map=1`` adds to a verdict, sized by the model in service."""
    rows, columns = classifier.map_grid or (None, None)
    row = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}
    grid = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}
    if rows:
        row |= {"minItems": columns, "maxItems": columns}
        grid["items"] |= {"enum": sorted({rows, columns})}
    size = f"{rows} x {columns}" if rows else "none: this model has no map"
    return {
        "fire_map": {
            "type": "array",
            "description": (
                "Only with `?map=1`. Where the model sees fire: rows of cells (top row first, left cell first), each "
                "the fire evidence of that part of the photo from 0 to 1 (3 decimals), from the same model call as "
                f"the verdict. Coarse evidence, not a detector. Grid: {size}."
            ),
            "items": row,
            **({"minItems": rows, "maxItems": rows} if rows else {}),
        },
        "fire_map_grid": {**grid, "description": "Only with `?map=1`: [rows, columns] of `fire_map`."},
    }


def _results_parameters(reader) -> list[dict]:
    """``limit`` (and ``cursor`` when the reader pages): the index's unless the server lists the bucket."""
    pages = reader is None or reader.pages
    source = results_index.IndexReader if pages else results.ResultsReader
    parameters = [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "How many results at most.",
            "schema": {"type": "integer", "minimum": 1, "maximum": source.max_limit, "default": source.default_limit},
        }
    ]
    if pages:
        parameters.append(
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "The `next_cursor` of an earlier answer, unchanged: the results older than that page.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": results_index.MAX_CURSOR_CHARS},
            }
        )
    return parameters


def _certainty_fields(classifier: Classifier) -> dict:
    """How sure a verdict is (``inference.classifier.certainty_of``), with this server's figures in the words."""
    low, high = classifier.borderline_band
    return {
        "threshold": {
            "type": "number", "minimum": 0, "maximum": 1,
            "description": "The decision threshold: the label is fire when fire_probability is at or above it.",
        },
        "margin": {
            "type": "number", "minimum": -1, "maximum": 1,
            "description": "fire_probability - threshold: how far the verdict is from the other label (positive: fire).",
        },
        "certainty": {
            "type": "string", "enum": list(CERTAINTIES),
            "description": (
                "borderline when the odds of fire are within a factor of "
                f"{math.exp(classifier.borderline_logits):.3g} of the threshold's odds (here: a fire probability "
                f"between {low:.3f} and {high:.3f}), else clear. A borderline verdict deserves a person's look."
            ),
        },
    }  # fmt: skip


def openapi_document(classifier: Classifier, reader=None) -> dict:
    """The document; ``reader`` is the app's results reader (None: no results source), whose limits it states."""
    limits = classifier.limits
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Firewatch",
            "version": classifier.version,
            "description": (
                "Classifies photos as fire or nofire. The image format is read from the bytes, not the file name. "
                f"Limits: {limits.max_bytes:,} bytes and {limits.max_pixels:,} pixels per photo."
            ),
        },
        "paths": {
            "/api/v1/classify": {
                "post": {
                    "operationId": "classify",
                    "summary": "Classify one photo",
                    "parameters": [
                        {
                            "name": "map",
                            "in": "query",
                            "required": False,
                            "description": "1 (or true) adds `fire_map` and `fire_map_grid`: where in the photo the model "
                                           "sees fire. Without it the answer is the verdict alone.",
                            "schema": {"type": "string", "enum": ["0", "1", "false", "true"], "default": "0"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {"image": {"type": "string", "format": "binary"}},
                                },
                                "encoding": {"image": {"contentType": IMAGE_TYPES}},
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": (
                                "The verdict. `source` is the uploaded file name. The first four fields are the CLI's "
                                "JSON object; `threshold`, `margin` and `certainty` say how sure the verdict is."
                            ),
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Classification"}}},
                        },
                        "400": _error_response(
                            "No file, not a multipart form (or its boundary is not RFC 2046's 1 to 70 characters), "
                            "a form whose framing is broken or cut short or whose part headers are not UTF-8, "
                            "or `map` is not 1 or 0.",
                            _codes_for(400),
                        ),
                        "408": _error_response("The upload arrived too slowly.", _codes_for(408)),
                        "413": _error_response(
                            "The upload is larger than the byte limit, or the form has too many parts.", _codes_for(413)
                        ),
                        "409": _error_response("`map=1` was asked of a model without a fire map.", [MAP_UNAVAILABLE]),
                        "415": _error_response("The bytes are not an image format the service reads.", _codes_for(415)),
                        "422": _error_response("A readable format, but this file cannot be classified.", _codes_for(422)),
                        "503": _error_response(
                            "Too many large photos are waiting to be decoded; try again in a few seconds.", [BUSY]
                        ),
                    },
                }
            },
            "/api/v1/results": {
                "get": {
                    "operationId": "results",
                    "summary": "The latest results the serverless path wrote, newest first",
                    "description": (
                        "With a results table (`FIREWATCH_RESULTS_TABLE`): read from its `newest` index, day by day "
                        "backwards. A page may hold fewer than `limit` results when days without any were passed "
                        f"(at most {results_index.LOOKBACK_DAYS} such days per request, by default); pass "
                        "`next_cursor` back as `cursor` for older results, until it is null. Without one: read "
                        f"from `s3://BUCKET/{RESULT_PREFIX}`, newest first (by the time S3 stored each result), with "
                        "no cursor. Objects that are not results are skipped. Answers may be a few seconds old: a "
                        "listing is reused for 2 seconds, or one second per 1,000 results in the bucket when that is "
                        "longer."
                    ),
                    "parameters": _results_parameters(reader),
                    "responses": {
                        "200": {
                            "description": "The newest results, newest first.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PipelineResults"}}},
                        },
                        "400": _error_response(
                            "`limit` is not a whole number in range, or `cursor` is not one this server handed out.",
                            [BAD_REQUEST],
                        ),
                        "404": _error_response("This server has no results table or bucket configured.", [RESULTS_DISABLED]),
                        "503": _error_response("The results table or bucket cannot be read right now.", [RESULTS_UNAVAILABLE]),
                    },
                }
            },
            "/api/v1/model": {
                "get": {
                    "operationId": "model",
                    "summary": "The model card of the model in service",
                    "responses": {
                        "200": {
                            "description": "The whole model card.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelCard"}}},
                        }
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Health check for the load balancer",
                    "responses": {
                        "200": {
                            "description": "The model is loaded and the worker answers.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Classification": {
                    "type": "object",
                    "required": ["source", "label", "fire_probability", "model_version", "threshold", "margin", "certainty"],
                    "properties": {
                        "source": {"type": "string"},
                        "label": {"type": "string", "enum": list(classifier.card.labels)},
                        "fire_probability": {"type": "number", "minimum": 0, "maximum": 1},
                        "model_version": {"type": "string"},
                        **_certainty_fields(classifier),
                        **_fire_map_fields(classifier),
                    },
                    "additionalProperties": False,
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "enum": list(HTTP_STATUS_BY_CODE)},
                                "message": {"type": "string"},
                            },
                            "additionalProperties": False,
                        }
                    },
                    "additionalProperties": False,
                },
                "PipelineResults": {
                    "type": "object",
                    "required": ["results"],
                    "properties": {
                        "bucket": {"type": "string", "description": "The upload bucket, when the server knows it."},
                        "table": {"type": "string", "description": "The results table read (with a results table only)."},
                        "results": {
                            "type": "array",
                            "maxItems": max(results.MAX_LIMIT, results_index.MAX_LIMIT),
                            "items": {"$ref": "#/components/schemas/PipelineResult"},
                        },
                        "next_cursor": {
                            "type": "string",
                            "nullable": True,
                            "description": "With a results table: the `cursor` of the next, older page; null at the end.",
                        },
                    },
                    "additionalProperties": False,
                },
                "PipelineResult": {
                    "description": (
                        "One result object the serverless path wrote for an upload `s3://BUCKET/uploads/<key>`: a verdict "
                        "(`label`, `fire_probability`) or an `error`, plus where it came from and when."
                    ),
                    "type": "object",
                    "required": ["result_key", "name", "classified_at"],
                    "properties": {
                        "result_key": {"type": "string", "description": f"The S3 key of the result: {RESULT_PREFIX}<key>.json"},
                        "name": {"type": "string", "description": "The uploaded file's name (last part of its key)."},
                        **_stored_result_fields(),
                        "label": {"type": "string"},
                        "fire_probability": {"type": "number", "minimum": 0, "maximum": 1},
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        },
                        "last_modified": {
                            "type": "string",
                            "format": "date-time",
                            "description": "When S3 stored the result (read from the bucket listing only).",
                        },
                    },
                    "additionalProperties": False,
                },
                "ModelCard": {
                    "type": "object",
                    "required": ["name", "version", "labels", "input", "threshold"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "labels": {"type": "array", "items": {"type": "string"}},
                        "input": {"type": "object"},
                        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "model_version"],
                    "properties": {"status": {"type": "string", "enum": ["ok"]}, "model_version": {"type": "string"}},
                },
            }
        },
    }
