"""Events a connection or listener hands its driver, as small frozen classes (h11's style).

A driver pulls them with ``Connection.next_event()`` / ``Listener.next_event()``
after each input (``Host.ready()`` says which endpoints have some). `Closed` is
always the last event of a connection: after it the driver may forget it.
"""

from __future__ import annotations

from dataclasses import dataclass

from synack.tcp.errors import TCPError
from synack.tcp.state import State


@dataclass(frozen=True, slots=True)
class Connected:
    """The three-way handshake completed (ESTABLISHED)."""


@dataclass(frozen=True, slots=True)
class DataAvailable:
    """The receive buffer went from empty to non-empty; call ``receive``.

    Edge-triggered: not repeated while unread bytes remain.
    """


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The peer sent FIN: after the bytes already buffered, nothing more will come."""


@dataclass(frozen=True, slots=True)
class SendSpace:
    """The send buffer, after being full, has a quarter of its room free again."""


@dataclass(frozen=True, slots=True)
class Reset:
    """The connection was reset by the peer (or refused, if `error` says so)."""

    error: TCPError


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The peer stopped answering; the connection is abandoned."""

    error: TCPError


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A transition of the RFC 9293 state machine, for tracing."""

    old: State
    new: State


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection reached CLOSED; its resources may be released."""


@dataclass(frozen=True, slots=True)
class ConnectionAvailable:
    """A listener's accept queue went from empty to non-empty; call ``accept``.

    Edge-triggered like `DataAvailable`: not repeated until ``accept`` has emptied
    the queue (the readable listening socket of ``select``).
    """


Event = (
    Connected | DataAvailable | EndOfStream | SendSpace | Reset | TimedOut | StateChanged | Closed
)
