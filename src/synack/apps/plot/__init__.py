"""``synack plot``: time-sequence, throughput and RTT graphs of a TCP connection in a pcap file.

`analysis` reads the capture into series with no plotting library; `draw` draws them
with matplotlib, which is optional (``pip install 'synack[plot]'``) and imported only
when a graph is drawn.
"""
