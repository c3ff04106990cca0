"""Pure parse and emit of bytes: TCP segments, checksums, sequence numbers, app frames.

Nothing here performs I/O or reads a clock; every function is a function of its
arguments, so the layers above can be tested byte for byte.
"""
