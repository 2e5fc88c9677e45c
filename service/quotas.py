"""Per-API-key request quotas (the ``limits`` library, moving windows).

Every authenticated ``/v1`` request of a staff or chain-leader key counts against
``service_rate_limit`` (e.g. ``120/minute``; several as ``120/minute;2000/hour``); admin keys are
not limited. Over the limit the answer is 429 ``too_many_requests`` in the error shape, with
``Retry-After`` (seconds until the window lets the next request through).

Counts live in Redis when ``service_rate_limit_storage`` names it (``redis://host:6379/0``: every
worker and host shares them), else in each worker's memory. If Redis cannot be reached, the
worker counts in its own memory meanwhile (logged at most once a minute) rather than refusing or
waving through every request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from fastapi import HTTPException
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string

from matcher.errors import ConfigError
from matcher.store.repo import Actor

log = logging.getLogger("service.quotas")
OFF = ("", "0", "off", "none")
REDIS_TIMEOUT_S = 0.5  # an unreachable Redis costs a request this long at most, then memory counts


class RateLimitedError(HTTPException):  # FastAPI's own type: service/errors.py renders it in the error shape
    """The key used up its quota; ``Retry-After`` says when to come back."""

    def __init__(self, limit: str, retry_after_s: int):
        super().__init__(429, f"rate limit of this API key reached ({limit}); retry in {retry_after_s} s",
                         headers={"Retry-After": str(retry_after_s)})


def parse_limits(text: str) -> list[RateLimitItem]:
    """``service_rate_limit`` as limit items (none when off); a bad value is a :class:`ConfigError`."""
    if (text or "").strip().lower() in OFF:
        return []
    try:
        return parse_many(text)
    except ValueError as exc:
        raise ConfigError(f"MATCHER_SERVICE_RATE_LIMIT: '{text}' is not a rate limit ({exc}); expected e.g. "
                          "'120/minute' or '120/minute;2000/hour', or 'off'") from None


def _async_uri(url: str) -> str:
    return url if url.startswith("async+") else f"async+{url}"


class Quotas:
    """The quota check of one worker (:meth:`check`, awaited once per authenticated request)."""

    def __init__(self, limit: str, storage_url: str | None = None):
        self.items = parse_limits(limit)
        self.storage_url = storage_url or None
        if self.storage_url and not self.storage_url.startswith(("redis://", "rediss://", "async+redis")):
            raise ConfigError(f"MATCHER_SERVICE_RATE_LIMIT_STORAGE: '{self.storage_url}' is not a redis:// URL; "
                              "leave it unset to count in each worker's memory")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned = 0.0

    def _limiters(self):
        """(shared limiter, memory limiter) of the running event loop: the async storages belong
        to the loop they were made on (one per worker; test clients make their own)."""
        from limits.aio.strategies import MovingWindowRateLimiter

        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            memory = MovingWindowRateLimiter(storage_from_string("async+memory://"))
            shared = memory
            if self.storage_url:
                shared = MovingWindowRateLimiter(storage_from_string(
                    _async_uri(self.storage_url), implementation="redispy", wrap_exceptions=True,
                    socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S))
            self._loop, self._shared, self._memory = loop, shared, memory
        return self._shared, self._memory

    async def check(self, actor: Actor) -> None:
        """Count one request of ``actor``; raise :class:`RateLimitedError` when over a limit."""
        if not self.items or actor.role == "admin":
            return
        shared, memory = self._limiters()
        who = ("api-key", f"{actor.key_id}-{actor.prefix}")  # the random prefix: no two databases' keys share counts
        for item in self.items:
            limiter = shared
            try:
                allowed = await shared.hit(item, *who)
            except StorageError as exc:
                self._warn(exc)
                limiter = memory
                allowed = await memory.hit(item, *who)
            if not allowed:
                stats = await limiter.get_window_stats(item, *who)
                raise RateLimitedError(str(item), max(1, math.ceil(stats.reset_time - time.time())))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning("rate-limit storage unreachable (%s); counting in this worker's memory meanwhile", exc)
