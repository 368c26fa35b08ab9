"""Benchmarks of the service against raw Elasticsearch: ingest, search, histogram, export.

``python -m bench.run`` (``make bench``) runs every measurement in one process against one
throwaway local engine; see the README's "Benchmarks" section for the figures and how to read them.
"""
