"""The WSGI entry gunicorn imports in each worker: ``gunicorn -c web_app/gunicorn.conf.py``."""

from .app import create_app

app = create_app()
