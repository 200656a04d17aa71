"""The WSGI entry gunicorn imports in each worker (``wsgi_app`` in gunicorn.conf.py)."""

from . import state
from .app import create_app

app = create_app()
if (reader := state.results_reader(app)) is not None:
    reader.prefetch()  # so that the first page already has the panel's results
