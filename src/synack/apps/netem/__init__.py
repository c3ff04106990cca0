"""`synack netem`: impair real traffic the way Linux's netem would, without netem.

A UDP relay (any UDP protocol) and a TUN mode (any IP traffic between two network
namespaces, the kernel's TCP included) share one pure decision module, `impair`,
so the same seed gives the same datagrams the same fate in both.
"""
