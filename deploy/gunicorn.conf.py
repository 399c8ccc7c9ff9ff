"""gunicorn settings for Lianhu: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Every value can be overridden from the environment (GUNICORN_*), so the systemd unit and the container
use this one file. Workers are plain sync processes: a push is one short database transaction, and
gunicorn's master restarts a worker that hangs past ``timeout``.
"""
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# (2 x cores) + 1 is gunicorn's advice for request/response work that waits on the database.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# A 500-op batch on a loaded PostgreSQL takes seconds, not minutes; past this the worker is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))  # SIGTERM/HUP: finish requests first
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))  # behind nginx's upstream keepalive
# Recycle workers now and then (with jitter, so they do not all restart at once) to bound any leak.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "500"))
# The app writes one JSON line per request itself (without paths, which may carry names): no access log.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# No preload: each worker opens its own database pool after the fork.
preload_app = False

# Metrics of all workers add up through files in one directory (prometheus_client's multiprocess mode).
# prometheus_client reads the variable when it is first imported, so it is set here, before the app loads.
_multiproc_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                       os.path.join(tempfile.gettempdir(), "lianhu-prometheus"))


def on_starting(server):
    """Start from an empty metrics directory: files of a previous run would be added to this one's."""
    shutil.rmtree(_multiproc_dir, ignore_errors=True)
    os.makedirs(_multiproc_dir, exist_ok=True)


def child_exit(server, worker):
    """A worker died or was recycled: drop its live gauges (its counters stay, so totals never go down)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _multiproc_dir)
