"""Tests of the drivers: our TCP carried over real sockets, on loopback only."""
