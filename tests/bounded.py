"""`run`: an async test body run on a fresh event loop, bounded in time (shared by the
chat tests; pytest puts this directory on sys.path)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

LIMIT = 20.0  # seconds any one test body may take


def run(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body on a fresh loop, bounded in time."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(LIMIT):
                await test(*args, **kwargs)

        asyncio.run(bounded())

    return wrapper
