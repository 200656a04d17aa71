"""``python -m web_app``: gunicorn's own command line, with ``gunicorn.conf.py`` and this command's options.

The options become gunicorn options, so gunicorn applies its documented order itself (the config file, then
``$GUNICORN_CMD_ARGS``, then the command line) and validates every setting. The address to listen on is set here
only: ``--host`` and ``--port`` (``127.0.0.1:8080`` by default; ``0.0.0.0`` in the container).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gunicorn.app.wsgiapp import WSGIApplication

from inference import positive_int

PROG = "python -m web_app"
CONFIG_FILE = Path(__file__).resolve().parent / "gunicorn.conf.py"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Serve the Firewatch web app under gunicorn.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 in the container)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--workers", type=positive_int, help="worker processes (default: $WEB_CONCURRENCY or the CPU count)")
    return parser


def gunicorn_arguments(args: argparse.Namespace) -> list[str]:
    """This command's options as gunicorn's command line (whose options win over the file and the environment)."""
    arguments = ["--config", str(CONFIG_FILE), "--bind", f"{args.host}:{args.port}"]
    if args.workers:
        arguments += ["--workers", str(args.workers)]
    return arguments


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # gunicorn reads its command line from sys.argv, as its own `gunicorn` script does.
    sys.argv = [PROG, *gunicorn_arguments(args)]
    WSGIApplication(f"{PROG} [--host HOST] [--port PORT] [--workers N]", prog=PROG).run()
