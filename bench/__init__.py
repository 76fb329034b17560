"""Benchmarks of the DataFlow storage layers against the raw database drivers.

Run ``python -m bench`` (or ``./run bench``); see ``bench/README.md``.
"""
