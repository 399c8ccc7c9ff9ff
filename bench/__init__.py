"""Benchmarks: Lianhu's push and pull over real HTTP, next to the database's own limit and to two peers.

``python -m bench.run --short`` (``make bench``) runs a small version of everything; ``--full``
(``make bench-full``) runs the sizes of issue 7 and rewrites the generated part of ``BENCHMARKS.md``.
"""
