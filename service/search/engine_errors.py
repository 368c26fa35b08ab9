"""Engine errors as service errors: translated here, in the search layer, and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from elasticsearch import ApiError, TransportError

from service.errors import bad_request, engine_unavailable


@contextmanager
def engine_errors() -> Iterator[None]:
    """A query the engine refuses is a 400 on ``q``; an unreachable or failing engine a 503."""
    try:
        yield
    except ApiError as e:
        if e.meta.status == 400:
            raise bad_request(f"the engine refused the query: {e.message}", field="q") from e
        raise engine_unavailable() from e
    except TransportError as e:
        raise engine_unavailable() from e
