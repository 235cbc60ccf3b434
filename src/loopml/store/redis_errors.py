"""One translation of redis-py errors into loopml's, for every Redis client in loopml."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loopml.errors import StoreUnavailable

__all__ = ["redis_errors"]


@contextmanager
def redis_errors(display: str) -> Iterator[None]:
    """Turn redis-py errors raised inside the block into one-line :class:`StoreUnavailable`.

    Parameters
    ----------
    display : str
        The server as the message names it (a URL without its password).
    """
    import redis

    try:
        yield
    except redis.ConnectionError as exc:
        raise StoreUnavailable(f"cannot reach Redis at {display}: {exc}") from exc
    except redis.TimeoutError as exc:
        raise StoreUnavailable(f"Redis at {display} timed out: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis at {display} refused a command: {exc}") from exc
