"""The eleven connection states of RFC 9293 §3.3.2, by their RFC names."""

from __future__ import annotations

from enum import Enum


class State(Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    def __str__(self) -> str:
        return self.value

    # Enum hashes a member by its name, in Python, on every `state in SOME_SET`; a member
    # is its own only instance (and compares by identity), so the identity hash serves.
    __hash__ = object.__hash__


# "Synchronized" states: both sides' sequence numbers are known (RFC 9293 §3.5.2).
SYNCHRONIZED = frozenset(
    {
        State.ESTABLISHED,
        State.FIN_WAIT_1,
        State.FIN_WAIT_2,
        State.CLOSE_WAIT,
        State.CLOSING,
        State.LAST_ACK,
        State.TIME_WAIT,
    }
)

# States in which arriving segment text is delivered to the user (RFC 9293 §3.10.7.4, seventh).
RECEIVES_TEXT = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})

# States in which the user may still SEND (RFC 9293 §3.10.2).
ACCEPTS_SEND = frozenset({State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT})

# States after our FIN has been queued: SEND is "error: connection closing".
SENT_FIN = frozenset(
    {State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.LAST_ACK, State.TIME_WAIT}
)
