"""Errors the core reports to its user, named after RFC 9293 §3.10's error strings.

Drivers map each to the standard library's exception and errno (for instance
`ConnectionRefused` to ``ConnectionRefusedError``/ECONNREFUSED).
"""

from __future__ import annotations


class TCPError(Exception):
    """Base class for errors reported by the TCP core."""


class ConnectionDoesNotExist(TCPError):
    """'error: connection does not exist' — the call needs a connection that is not open."""


class ConnectionClosing(TCPError):
    """'error: connection closing' — SEND after this side has already closed."""


class ConnectionReset(TCPError):
    """'error: connection reset' — the peer aborted the connection with RST."""


class ConnectionRefused(TCPError):
    """'error: connection refused' — RST in answer to our SYN."""


class ConnectionTimedOut(TCPError):
    """The peer stopped acknowledging: retransmissions (or probes) ran out, or the user timeout passed."""
