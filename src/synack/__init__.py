"""synack: client/server networking for Python, from the three-way handshake up."""

__version__ = "0.1.0"
