"""``python -m web_app``: serve the app under gunicorn with ``gunicorn.conf.py``, options on top."""

from __future__ import annotations

import argparse
from pathlib import Path

from gunicorn.app.base import Application

CONFIG_FILE = Path(__file__).resolve().parent / "gunicorn.conf.py"


class FirewatchServer(Application):
    """Settings in order: gunicorn.conf.py, then $GUNICORN_CMD_ARGS, then this command's options."""

    def __init__(self, overrides: dict) -> None:
        self.overrides = overrides
        super().__init__(prog="python -m web_app")

    def load_config(self) -> None:
        self.load_config_from_file(str(CONFIG_FILE))
        from_env = self.cfg.parser().parse_args(self.cfg.get_cmd_args_from_env())
        for key, value in vars(from_env).items():
            if value is not None and key != "args":
                self.cfg.set(key.lower(), value)
        for key, value in self.overrides.items():
            self.cfg.set(key, value)

    def load(self):
        from .wsgi import app  # in the worker: each worker loads its own model

        return app


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m web_app", description="Serve the Firewatch web app under gunicorn.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in the container)")
    parser.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    parser.add_argument("--workers", type=_positive, help="worker processes (default: $WEB_CONCURRENCY or the CPU count)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    overrides = {"bind": [f"{args.host}:{args.port}"]}
    if args.workers:
        overrides["workers"] = args.workers
    FirewatchServer(overrides).run()
