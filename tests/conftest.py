"""Fixtures the app tests share: the transport each case runs on.

Every chat (TCP) and files test that takes `transport` runs once per registered
transport (`synack.transport.names()`): the operating system's TCP and ours.
A test module may define its own `transport` fixture instead (the transport
contract suite does, to add its generic-paths variant).
"""

from __future__ import annotations

import pytest

from synack import transport as seam


@pytest.fixture(params=seam.names())
def transport(request: pytest.FixtureRequest) -> str:
    """The name of a transport, passed as ``transport=`` or ``--transport``."""
    name: str = request.param
    return name
