"""The WSGI entry point gunicorn imports in each worker (``gunicorn wsgi:app``)."""
import gc

from server import create_app

app = create_app()

# A 500-op push allocates some hundred thousand short-lived objects (ORM states, dicts, JSON values). With
# CPython's default thresholds the collector runs gen-0 every 700 allocations and, now and then, scans the
# whole heap of imported modules and the app; measured on push that was a tenth of a worker's time.
# Everything built at start-up lives as long as the worker, so it is frozen out of the collector's scans,
# and gen-0 runs less often. Cycles are still collected: memory per worker stays well under its budget
# (see BENCHMARKS.md, "memory per worker").
gc.freeze()
gc.set_threshold(20_000, 20, 20)
