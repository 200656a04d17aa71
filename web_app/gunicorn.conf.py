"""Gunicorn settings for the Firewatch web app, read by ``python -m web_app`` (which sets the address to listen on:
``--host``, ``--port``) and by ``gunicorn -c web_app/gunicorn.conf.py --bind HOST:PORT``.

Environment overrides: WEB_CONCURRENCY (workers), FIREWATCH_WEB_THREADS (threads per worker),
FIREWATCH_READ_GRACE_SECONDS and FIREWATCH_READ_MIN_RATE (how slowly a request may arrive, web_app/worker.py),
FIREWATCH_BODY_BUFFER_MB (request bodies each worker's event loop reads before a thread takes them),
FIREWATCH_BODY_SPOOL_MB (what they may hold on disk past that, all workers together; 0: none),
FIREWATCH_THREADS (LiteRT threads per model, read by the inference core), GUNICORN_CMD_ARGS (anything else).
"""

import os
import shutil
import tempfile

# Import the heavy libraries once in the master: forked workers share their pages copy-on-write.
# The model itself is loaded in each worker (web_app.wsgi), not here: a LiteRT interpreter owns native
# state and thread pools that must not be shared across fork(), and loading it takes ~10 ms.
import numpy  # noqa: F401,E402
import PIL.Image  # noqa: F401,E402
import flask  # noqa: F401,E402
from ai_edge_litert import interpreter as _litert  # noqa: F401,E402

wsgi_app = "web_app.wsgi:app"

# Inference is CPU-bound: one worker process per core. Each worker is gunicorn's threaded worker (gthread), with
# reads that time out (web_app/worker.py). Its threads wait on the network, which costs no CPU: enough of them
# that a few dozen slow clients cannot take them all (each is cut off once it falls behind the minimum rate),
# while the work that costs CPU and memory (decoding) is bounded separately, per instance (web_app/admission.py).
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
worker_class = "web_app.worker.FirewatchWorker"
threads = int(os.environ.get("FIREWATCH_WEB_THREADS", "32"))
# Longer than the ALB idle timeout (60 s): the load balancer, not gunicorn, closes idle connections,
# so it never sends a request on a connection gunicorn has just closed (which shows up as a 502).
keepalive = 65
timeout = 30            # a worker silent this long is restarted
graceful_timeout = 25   # on SIGTERM (scale-in, deploy), finish in-flight requests first
# A backstop, not the memory bound: workers give memory back after each large decode (web_app/admission.py),
# and the benchmark checks for leaks. Recycling now and then still undoes heap fragmentation; the jitter keeps
# the workers from restarting at the same moment.
max_requests = 5000
max_requests_jitter = 500

# Bounds on the request head; the body is bounded by the app (MAX_CONTENT_LENGTH -> 413).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("FIREWATCH_LOG_LEVEL", "info")
logger_class = "web_app.logs.JsonAccessLogger"
proc_name = "firewatch-web"
control_socket_disable = True  # no runtime control socket: nothing to share between instances
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # worker heartbeat files off the (possibly slow, overlay) disk


def on_starting(server):
    """One folder of decode-slot lock files for the whole server, inherited by every worker (web_app/admission.py)."""
    os.environ["FIREWATCH_DECODE_LOCK_DIR"] = tempfile.mkdtemp(prefix="firewatch-decode-")


def on_exit(server):
    shutil.rmtree(os.environ.get("FIREWATCH_DECODE_LOCK_DIR", ""), ignore_errors=True)
