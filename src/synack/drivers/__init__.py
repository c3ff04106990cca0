"""Drivers: our TCP carried to the world -- in UDP datagrams, or over a TUN device as IPv4.

A driver owns everything the sans-IO core may not touch: sockets and devices,
threads, the event loop and the clock. It feeds each arriving datagram and the
current time into a `synack.tcp.Host`, then sends what the host returns and re-arms
its one timer (the contract in `synack.tcp.host`). Drivers import only the core
(`synack.tcp`, `synack.wire`), never the apps or `synack.testing`
(tests/test_layering.py checks it).
"""
