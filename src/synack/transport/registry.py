"""Transports by name: the one place ``--transport NAME`` is turned into a `Transport`."""

from __future__ import annotations

from .base import Transport


class Registry:
    """Named transports, in the order they were registered."""

    def __init__(self) -> None:
        self._by_name: dict[str, Transport] = {}

    def register(self, transport: Transport) -> Transport:
        """Add `transport` under its name; a name can be taken only once."""
        if not isinstance(transport, Transport):
            raise TypeError(f"{transport!r} is not a synack.transport.Transport")
        name = getattr(transport, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{transport!r} has no name")
        if name in self._by_name:
            raise ValueError(
                f"a transport named {name!r} is already registered ({self._by_name[name]!r})"
            )
        self._by_name[name] = transport
        return transport

    def get(self, name: str) -> Transport:
        """The transport called `name`; an unknown name is a `ValueError` listing the choices."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(
                f"unknown transport {name!r} (choose from {', '.join(self._by_name) or 'nothing'})"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)
