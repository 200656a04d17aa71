"""Gunicorn's access log as JSON lines: one object per request, easy for CloudWatch Logs Insights.

A request that classified photos adds how many (``classified``), how many were fire (``fire``) and how many of the
verdicts were borderline (``borderline``), and the deployment's ``environment``; metric filters on the log group
count them (README, "The web app and its API").
"""

from __future__ import annotations

import json
import time

from gunicorn.glogging import Logger

from inference import BORDERLINE, Prediction
from inference.contract import ENVIRONMENT_DIMENSION, VERDICT_LOG_FIELDS, environment

from .reads import parse_head

VERDICTS = "firewatch.verdicts"  # the request environ's key for its counts


def count_verdict(environ: dict, prediction: Prediction) -> None:
    """Counts ``prediction`` into the request's access log line."""
    # the environment is the metrics' dimension: the filters of each deployment count its own lines
    counts = environ.setdefault(VERDICTS, {**dict.fromkeys(VERDICT_LOG_FIELDS, 0), ENVIRONMENT_DIMENSION: environment()})
    counts["classified"] += 1
    counts["fire"] += prediction.is_fire
    counts["borderline"] += prediction.certainty == BORDERLINE


class JsonAccessLogger(Logger):
    def access(self, resp, req, environ, request_time):
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        self._write({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(status),
            "bytes_sent": getattr(resp, "sent", None),
            "request_bytes": int(environ.get("CONTENT_LENGTH") or 0),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            **environ.get(VERDICTS, {}),
        })

    def answered_early(self, remote_addr: str, head: bytes, status: int, bytes_sent: int, seconds: float) -> None:
        """The line of a request the worker answered before the app saw it (a body that arrived too slowly), from
        its raw ``head``; the same fields as the app's requests."""
        first, pairs = parse_head(head)
        method, _, rest = first.partition(b" ")
        headers = {name: value.decode("latin-1") for name, value in pairs}
        length = headers.get(b"content-length", "")
        self._write({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "remote_addr": remote_addr,
            "forwarded_for": headers.get(b"x-forwarded-for"),
            "method": method.decode("latin-1"),
            "path": rest.partition(b" ")[0].partition(b"?")[0].decode("latin-1"),
            "status": status,
            "bytes_sent": bytes_sent,
            "request_bytes": int(length) if length.isdigit() else 0,
            "duration_ms": round(seconds * 1000, 2),
            "user_agent": headers.get(b"user-agent"),
        })

    def _write(self, record: dict) -> None:
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info(json.dumps(record))
        except Exception:  # a log line must never fail a request
            self.exception("cannot write the access log line")
