"""Errors a user can cause, reported as one clear line and a non-zero exit.

Anything raised as `UserError` reaches the terminal as ``synack: <message>``
with no traceback. Library code raises it where the cause is outside the
program (a bad address, a missing file, a refused connection); bugs stay
ordinary exceptions so that they are noticed.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure caused by input or environment, with a message fit for the user."""

    exit_code = 1


class UsageError(UserError):
    """The command line itself is wrong (exit status 2, as argparse uses)."""

    exit_code = 2


def describe_os_error(exc: OSError, what: str = "") -> str:
    """One line for an `OSError`, prefixed with what we were doing, without errno noise."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) and not exc.strerror:
        reason = "timed out"
    reason = reason[0].lower() + reason[1:] if reason else reason
    return f"{what}: {reason}" if what else reason
