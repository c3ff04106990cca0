"""Tracing synack's TCP, for apps: the seam's door to `synack.drivers.trace`.

Apps stay on streams and never import a driver; a command line that was given
``--trace``, ``--trace-json`` or ``--pcap`` calls `enable` once, before it opens
anything, and every engine of our TCP made afterwards in this process is traced.
"""

from __future__ import annotations


def enable(
    *, text: bool | None = None, json_path: str | None = None, pcap: str | None = None
) -> None:
    """Trace synack's TCP in this process; what is not given comes from the environment
    (``SYNACK_TRACE``, ``SYNACK_TRACE_JSON``, ``SYNACK_PCAP``).

    Raises a one-line `OSError` when a file cannot be written, or is being written by
    another process (``{pid}`` in its name gives each process its own).
    """
    from synack.drivers import trace

    trace.configure(text=text, json_path=json_path, pcap=pcap)
