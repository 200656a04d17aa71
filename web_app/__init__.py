"""Firewatch's web target: a Flask app (upload page + JSON API) served by gunicorn.

Thin on purpose: HTTP in, the inference core's verdict out. The API is described in README.md ("The web app and its
API") and served as an OpenAPI document at /api/v1/openapi.json.
"""

from .app import create_app

__all__ = ["create_app"]
