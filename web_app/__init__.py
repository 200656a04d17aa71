"""Firewatch's web target: a Flask app (upload page + JSON API) served by gunicorn.

Thin on purpose: HTTP in, the inference core's verdict out. See ARCHITECTURE.md, "Web API".
"""

from .app import create_app

__all__ = ["create_app"]
