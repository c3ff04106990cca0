"""Errors a user can cause, reported as one clear line and a non-zero exit.

Anything raised as `UserError` reaches the terminal as ``synack: <message>``
with no traceback. Library code raises it where the cause is outside the
program (a bad address, a missing file, a refused connection); bugs stay
ordinary exceptions so that they are noticed.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """A failure caused by input or environment, with a message fit for the user."""

    exit_code = 1


class UsageError(UserError):
    """The command line itself is wrong (exit status 2, as argparse uses)."""

    exit_code = 2


def os_reason(exc: OSError) -> str:
    """The reason in an `OSError`, as a lower-case phrase ("connection refused").

    asyncio words its connect and bind failures its own way ("Connect call failed
    ('127.0.0.1', 7)", "error while attempting to bind on address ..."), so where an
    errno is known, the errno's own words are used.
    """
    if isinstance(exc, TimeoutError) and not exc.strerror:
        return "timed out"
    if exc.errno and exc.errno > 0:  # resolver errors (socket.gaierror) are negative
        reason = os.strerror(exc.errno)
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
    return reason[0].lower() + reason[1:]


def describe_os_error(exc: OSError, what: str = "") -> str:
    """One line for an `OSError`, prefixed with what we were doing, without errno noise."""
    reason = os_reason(exc)
    return f"{what}: {reason}" if what else reason
