"""Engine errors as service errors: translated here, in the search layer, and nowhere else.

Every function of ``service.search`` that the rest of the service calls raises
:class:`~service.errors.ServiceError` only: an unreachable or failing engine is
:class:`~service.errors.EngineUnavailable` (503), a query the engine refuses a 400 on ``q``.
The client library's exceptions never leave this package.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from elasticsearch import ApiError, TransportError

from service.errors import bad_request, engine_unavailable

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def engine_errors() -> Iterator[None]:
    """A query the engine refuses is a 400 on ``q``; an unreachable or failing engine a 503."""
    try:
        yield
    except ApiError as e:
        if e.meta.status == 400:
            raise bad_request(f"the engine refused the query: {e.message}", field="q") from e
        raise engine_unavailable(detail=str(e)) from e
    except TransportError as e:
        raise engine_unavailable(detail=str(e)) from e


@contextmanager
def engine_failures() -> Iterator[None]:
    """Any engine error, a refused request included, is :class:`EngineUnavailable` (for calls
    whose requests the service builds itself: a refusal is the engine's state, not the client's)."""
    try:
        yield
    except (ApiError, TransportError) as e:
        raise engine_unavailable(detail=str(e)) from e


def translated(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``fn`` with :func:`engine_failures` around it."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with engine_failures():
            return await fn(*args, **kwargs)

    return wrapper
