"""Benchmarks of the service against raw Elasticsearch: ingest, search, histogram, export.

``python -m bench.run`` (``make bench``) runs every measurement in one process against one
throwaway local engine; see bench/README.md for the method and the figures.
"""
