"""The message catalogue: key -> (English, Chinese). See `i18n.py` for how it is used."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    # ------------------------------------------------------------------ common
    "end.client": ("client", "客户端"),
    "end.server": ("server", "服务端"),
    "end.clients": ("clients", "多个客户端"),
    "end.sender": ("sender", "发送方"),
    "end.receiver": ("receiver", "接收方"),
    "verdict.holds": ("The claim holds: {claim}", "结论成立:{claim}"),
    "verdict.fails": ("The claim does NOT hold: {claim}", "结论不成立:{claim}"),
    "tag.retransmission": ("retx", "重传"),
    "check.client": ("client: {states}", "客户端:{states}"),
    "check.server": ("server: {states}", "服务端:{states}"),
    "recap.handshake": (
        "The connection opens with the three-way handshake (lesson: handshake).",
        "先用三次握手建立连接(见 handshake 一课)。",
    ),
    "cli.list.heading": (
        "Lessons: each one makes a claim of the course notes happen, draws it, and checks it.",
        "课程列表:每一课都让笔记里的一个结论真实发生,画出来,并自动验证。",
    ),
    "cli.list.virtual": ("synack's TCP, virtual time", "synack 自己的 TCP,虚拟时间"),
    "cli.list.loopback": ("real sockets on 127.0.0.1", "127.0.0.1 上的真实套接字"),
    "cli.list.usage": (
        "Run one with: synack lesson NAME   (--lang zh for Chinese, --pcap FILE for Wireshark)",
        "运行一课:synack lesson 课名   (--lang en 切换英文,--pcap 文件 保存给 Wireshark)",
    ),
    "cli.pcap.written": (
        "{count} segments written to {path} (open it with Wireshark or tcpdump -r).",
        "已把 {count} 个报文段写入 {path}(可用 Wireshark 或 tcpdump -r 打开)。",
    ),
    "cli.pcap.loopback": (
        "the {name} lesson runs on the operating system's sockets here, not on synack's TCP, so it has no segments of ours to write; add --transport synack to run it on synack's TCP, or capture loopback traffic with tcpdump -i lo",
        "{name} 这一课此时使用操作系统的套接字,而不是 synack 自己的 TCP,没有报文段可以保存;加上 --transport synack 让它在 synack 的 TCP 上运行,或者用 tcpdump -i lo 抓取回环网卡的流量",
    ),
    "cli.pcap.no_tcp": (
        "the {name} lesson sends UDP datagrams, not TCP segments, on every transport, so --pcap has nothing to write; capture them with tcpdump -i lo udp",
        "{name} 这一课无论用哪种传输都只发送 UDP 数据报,没有 TCP 报文段,--pcap 无从写起;可以用 tcpdump -i lo udp 抓取",
    ),
    # ------------------------------------------------------------------ handshake
    "hs.title": ("The three-way handshake", "三次握手"),
    "hs.summary": (
        "connect() and accept(): SYN, SYN+ACK, ACK, and the states of both ends",
        "connect() 与 accept():SYN、SYN+ACK、ACK,以及两端的状态变化",
    ),
    "hs.listen": (
        "The server has called bind() and listen(5): its socket waits in LISTEN. The client "
        "has not connected yet: CLOSED. Both ends run synack's own TCP on a virtual network "
        "with 10 ms of delay each way.",
        "服务端已调用 bind() 和 listen(5):套接字处于 LISTEN 状态,等待连接。客户端还没有连接:"
        "CLOSED。两端运行的是 synack 自己的 TCP,虚拟网络单程延迟 10 毫秒。",
    ),
    "hs.syn": (
        "1st handshake: connect() sends a SYN from port {port} and the client enters SYN_SENT. "
        "The SYN carries the client's initial sequence number x = {isn}; like Wireshark, the "
        "ladder counts from it, so x shows as seq=0.",
        "第一次握手:connect() 从端口 {port} 发出 SYN,客户端进入 SYN_SENT 状态。SYN 携带客户端的"
        "初始序列号 x = {isn};和 Wireshark 一样,图中的序号从它算起,所以 x 显示为 seq=0。",
    ),
    "hs.options": (
        "The SYN also offers options: MSS {mss} bytes, window scaling, SACK and timestamps.",
        "SYN 还提出了几个选项:MSS {mss} 字节、窗口扩大、SACK 和时间戳。",
    ),
    "hs.synack": (
        "2nd handshake: the server's TCP answers by itself, before any accept(): one segment "
        "with SYN (its own initial sequence number y, shown as seq=0) and ACK (ack = x+1: "
        "'I got your SYN'). The server enters SYN_RCVD: a half-open connection, kept in the "
        "half-connection pool (the SYN queue).",
        "第二次握手:服务端的 TCP 自动应答,不需要等 accept():一个报文段同时带 SYN(自己的初始"
        "序列号 y,显示为 seq=0)和 ACK(ack = x+1,意思是“收到你的 SYN 了”)。服务端进入 "
        "SYN_RCVD 状态:这是一个半连接,放在半连接池(SYN 队列)里。",
    ),
    "hs.ack": (
        "3rd handshake: the client acknowledges the server's SYN (ack = y+1) and is "
        "ESTABLISHED: it may send data now.",
        "第三次握手:客户端确认服务端的 SYN(ack = y+1),进入 ESTABLISHED 状态,现在可以发数据了。",
    ),
    "hs.established": (
        "The ACK arrives: the server is ESTABLISHED too, and the connection moves from the "
        "SYN queue to the accept queue.",
        "ACK 到达:服务端也进入 ESTABLISHED 状态,连接从半连接池移到全连接队列(accept 队列)。",
    ),
    "hs.accept": (
        "Only now does accept() return it: connect() starts the handshake, accept() just takes "
        "a finished connection from the queue. Why three segments and not two? The third "
        "proves to the server that the client can receive. An old SYN delayed in the network "
        "gets no third segment, so no connection is made from it.",
        "直到这时 accept() 才返回这个连接:connect() 发起三次握手,accept() 只是从队列里取出已经"
        "建立好的连接。为什么是三次而不是两次?第三个报文段向服务端证明客户端能收到消息。网络里"
        "滞留的旧 SYN 等不到第三次握手,服务端就不会为它白白建立连接。",
    ),
    "hs.claim": (
        "a TCP connection opens with exactly three segments, SYN, SYN+ACK and ACK, through "
        "the states the notes name.",
        "TCP 连接恰好用三个报文段建立(SYN、SYN+ACK、ACK),两端经历的状态与笔记所写一致。",
    ),
    "hs.check.flags": (
        "segments sent: {flags} (tcpdump's letters: S = SYN, . = ACK)",
        "发送的报文段:{flags}(tcpdump 记法:S = SYN,. = ACK)",
    ),
    "hs.check.acks": (
        "the SYN+ACK acknowledges x+1 and the last ACK y+1 (x = {x}, y = {y})",
        "SYN+ACK 确认的是 x+1,最后的 ACK 确认的是 y+1(x = {x},y = {y})",
    ),
    # ------------------------------------------------------------------ close
    "close.title": ("The four-way close", "四次挥手"),
    "close.summary": (
        "close(): FIN, ACK, FIN, ACK; the half-close; TIME_WAIT and 2MSL",
        "close():FIN、ACK、FIN、ACK;半关闭;TIME_WAIT 与 2MSL",
    ),
    "close.fin1": (
        "1st wave: the client is done sending. Its TCP sends a FIN: 'I have nothing more "
        "to send.' The client enters FIN_WAIT_1. (It calls shutdown(SHUT_WR), which sends "
        "the same FIN as close() but keeps reading: a closed socket would answer any "
        "late data with a reset.)",
        "第一次挥手:客户端不再发送数据,TCP 发出 FIN,意思是“我没有数据要发了”。客户端进入 "
        "FIN_WAIT_1 状态。(这里调用的是 shutdown(SHUT_WR):它发出和 close() 一样的 FIN,但还能"
        "继续读;如果 close() 了,迟到的数据只会换来一个复位。)",
    ),
    "close.ack1": (
        "2nd wave: the server's TCP acknowledges the FIN at once and enters CLOSE_WAIT. Its "
        "application now reads the end of the stream: recv() returns b'' (an empty read "
        "means the peer has closed).",
        "第二次挥手:服务端的 TCP 立即确认这个 FIN,进入 CLOSE_WAIT 状态。服务端程序这时读到流的"
        "结尾:recv() 返回 b''(读到空数据,说明对方关闭了)。",
    ),
    "close.fw2": (
        "The ACK arrives: the client is in FIN_WAIT_2, waiting for the server's own FIN.",
        "ACK 到达,客户端进入 FIN_WAIT_2 状态,等待服务端自己的 FIN。",
    ),
    "close.halfclose": (
        "Why the 2nd and 3rd waves cannot be merged: the server may still have something "
        "to say. Here it sends one more message while in CLOSE_WAIT (a half-close: one "
        "direction is shut, the other still open).",
        "为什么第二次和第三次挥手不能合并:服务端可能还有话没说完。这里它在 CLOSE_WAIT 状态下"
        "又发了一条消息(半关闭:一个方向已经关闭,另一个方向仍然开着)。",
    ),
    "close.read": (
        "The client, in {state}, still receives it: {data}.",
        "处于 {state} 状态的客户端照样收到了:{data}。",
    ),
    "close.fin2": (
        "3rd wave: the server is done and calls close(): FIN. The server enters LAST_ACK "
        "and waits for the last ACK.",
        "第三次挥手:服务端说完了,调用 close() 发出 FIN,进入 LAST_ACK 状态,等待最后一个 ACK。",
    ),
    "close.ack2": (
        "4th wave: the client acknowledges the server's FIN and enters TIME_WAIT.",
        "第四次挥手:客户端确认服务端的 FIN,进入 TIME_WAIT 状态。",
    ),
    "close.server_closed": (
        "The last ACK arrives: the server is CLOSED and forgets the connection.",
        "最后一个 ACK 到达,服务端进入 CLOSED 状态,释放这个连接。",
    ),
    "close.two_msl": (
        "The client waits in TIME_WAIT for 2MSL (2 × {msl} s = {seconds} s here) before it "
        "is CLOSED, in case its last ACK was lost and the FIN comes again (lesson: "
        "time-wait). On virtual time the wait costs no real time at all.",
        "客户端在 TIME_WAIT 状态等待 2MSL(这里是 2 × {msl} 秒 = {seconds} 秒)才进入 CLOSED,"
        "以防最后的 ACK 丢失、对方重发 FIN(见 time-wait 一课)。在虚拟时间里,这段等待不花一点"
        "真实时间。",
    ),
    "close.claim": (
        "closing takes four segments, FIN, ACK, FIN, ACK, through the states the notes "
        "name, and between the 2nd and 3rd the side that closes second can still send.",
        "关闭连接需要四个报文段(FIN、ACK、FIN、ACK),两端经历笔记所写的状态;在第二次和第三次"
        "挥手之间,后关闭的一方仍然可以发送数据。",
    ),
    "close.check.order": (
        "in order: client FIN (seq={fin1}), server ACK (ack={ack1}), server FIN "
        "(seq={fin2}), client ACK (ack={ack2}); each ACK acknowledges its FIN",
        "顺序为:客户端 FIN(seq={fin1})、服务端 ACK(ack={ack1})、服务端 FIN(seq={fin2})、"
        "客户端 ACK(ack={ack2});每个 ACK 都确认了对应的 FIN",
    ),
    "close.check.halfclose": (
        "after its own FIN, the client still received {data} in FIN_WAIT_2",
        "客户端发出 FIN 之后,在 FIN_WAIT_2 状态下仍然收到了 {data}",
    ),
    "close.check.two_msl": (
        "TIME_WAIT lasted {seconds} s = 2MSL (MSL = {msl} s)",
        "TIME_WAIT 持续了 {seconds} 秒 = 2MSL(MSL = {msl} 秒)",
    ),
    # ------------------------------------------------------------------ time-wait
    "tw.title": ("TIME_WAIT and 2MSL", "TIME_WAIT 与 2MSL"),
    "tw.summary": (
        "the last ACK is lost: TIME_WAIT answers the re-sent FIN; without it, a reset",
        "最后一个 ACK 丢了:TIME_WAIT 会回应重发的 FIN;没有 TIME_WAIT,只能回复位(RST)",
    ),
    "tw.section.with": (
        "With TIME_WAIT: the client keeps the connection for 2MSL",
        "有 TIME_WAIT:客户端把连接保留 2MSL",
    ),
    "tw.section.without": (
        "Without TIME_WAIT: what if the client forgot the connection at once?",
        "没有 TIME_WAIT:如果客户端立刻忘掉这个连接,会怎样?",
    ),
    "tw.lost": (
        "The close goes as in lesson close, but the client's last ACK is lost on the way "
        "(the lesson drops it). The client cannot know: it is in TIME_WAIT.",
        "关闭过程和 close 一课相同,但客户端的最后一个 ACK 在路上丢了(本课故意丢弃)。客户端无从"
        "知道,它处于 TIME_WAIT 状态。",
    ),
    "tw.lost_no_wait": (
        "The same close and the same lost ACK; but this client skips TIME_WAIT (2MSL = 0) "
        "and is CLOSED at once: it has forgotten the connection.",
        "同样的关闭,同样丢了最后一个 ACK;但这个客户端跳过了 TIME_WAIT(2MSL = 0),立刻进入 "
        "CLOSED,已经忘掉了这个连接。",
    ),
    "tw.fin_again": (
        "The server, still in LAST_ACK, got no ACK for its FIN. Its retransmission timer "
        "fires and it sends the FIN again.",
        "服务端仍在 LAST_ACK 状态,它的 FIN 没有得到确认。重传定时器到时,它再次发送 FIN。",
    ),
    "tw.reack": (
        "The client is still in TIME_WAIT and remembers the connection, so it acknowledges "
        "the FIN again and starts its 2MSL wait afresh: what the notes mean by 'otherwise "
        'say "I know" once more\'.',
        "客户端还在 TIME_WAIT 状态,记得这个连接,于是再次确认这个 FIN,并重新开始 2MSL 计时:"
        "这就是笔记里说的“否则重说一次‘我知道了’”。",
    ),
    "tw.server_closed": (
        "This ACK arrives: the server closes cleanly, CLOSED.",
        "这次 ACK 到达了,服务端正常关闭,进入 CLOSED 状态。",
    ),
    "tw.closed": (
        "{seconds} s after its last ACK the client's TIME_WAIT ends: CLOSED.",
        "最后一次 ACK 之后 {seconds} 秒,客户端的 TIME_WAIT 结束,进入 CLOSED。",
    ),
    "tw.rst": (
        "The re-sent FIN reaches a TCP that has no such connection, which answers as it "
        "answers any stray segment: RST (reset). The server's orderly close ends in a "
        "reset instead.",
        "重发的 FIN 到达时,客户端的 TCP 已经没有这个连接了,只能像对待任何无主报文一样回一个 "
        "RST(复位)。服务端本应正常的关闭,变成了被复位。",
    ),
    "tw.why": (
        "So TIME_WAIT serves twice: a lost last ACK can still be given again, and for 2MSL "
        "no old segment of this connection can be taken for part of a new one on the same "
        "ports. It is also why a server that closes first and restarts at once may meet "
        "'Address already in use', unless it sets SO_REUSEADDR as synack's servers do.",
        "所以 TIME_WAIT 有两个作用:最后的 ACK 丢了还能重新给出;在 2MSL 内,这个连接的旧报文不会"
        "被误当成同一对端口上新连接的数据。这也是为什么先关闭的服务端立刻重启时,可能遇到"
        "“Address already in use”,除非像 synack 的服务端那样设置 SO_REUSEADDR。",
    ),
    "tw.claim": (
        "TIME_WAIT keeps the connection for 2MSL so that a lost last ACK can be given "
        "again; without it the re-sent FIN is answered by a reset.",
        "TIME_WAIT 把连接保留 2MSL,最后的 ACK 丢了还能重新给出;没有 TIME_WAIT,重发的 FIN 只能"
        "得到复位(RST)。",
    ),
    "tw.check.resent": (
        "the server, in LAST_ACK, sent its FIN again after the last ACK was lost",
        "最后的 ACK 丢失后,处于 LAST_ACK 的服务端重发了 FIN",
    ),
    "tw.check.reack": (
        "the client, in TIME_WAIT, answered it with an ACK ([{flags}])",
        "处于 TIME_WAIT 的客户端用 ACK 回应了它([{flags}])",
    ),
    "tw.check.clean": (
        "the server closed without a reset",
        "服务端正常关闭,没有被复位",
    ),
    "tw.check.restart": (
        "the client stayed in TIME_WAIT {seconds} s after that ACK: a fresh 2MSL (MSL = {msl} s)",
        "这次 ACK 之后,客户端又在 TIME_WAIT 停留了 {seconds} 秒:重新计时的 2MSL(MSL = {msl} 秒)",
    ),
    "tw.check.rst": (
        "without TIME_WAIT the re-sent FIN was answered with [{flags}] (RST)",
        "没有 TIME_WAIT 时,重发的 FIN 得到的回应是 [{flags}](RST)",
    ),
    # ------------------------------------------------------------------ retransmit
    "rt.title": (
        "Retransmission: keep a copy, resend on a timer, give up",
        "超时重传:保留副本、定时重发、最终放弃",
    ),
    "rt.summary": (
        "a lost segment resent from the copy; the RTO doubling; the connection giving up",
        "丢失的报文段凭副本重发;RTO 逐次翻倍;重试次数用尽后放弃连接",
    ),
    "rt.lost": (
        "The client sends {n} bytes and the segment is lost (the lesson drops it). The data "
        "is not gone: the client's TCP keeps a copy until it is acknowledged ({kept} bytes "
        "unacknowledged), and its retransmission timer (RTO) is running.",
        "客户端发送 {n} 字节,这个报文段丢了(本课故意丢弃)。数据并没有丢:客户端的 TCP 保留着"
        "副本,直到收到确认为止(还有 {kept} 字节未确认),重传定时器(RTO)正在计时。",
    ),
    "rt.resent": (
        "No ACK within the RTO ({rto} s: computed from the measured round trip, 20 ms here, "
        "but never less than 200 ms). The timer fires and the copy goes again, with the "
        "same seq.",
        "在 RTO({rto} 秒:根据测得的往返时间计算,这里是 20 毫秒,但最少 200 毫秒)内没有等到 "
        "ACK。定时器到时,副本以相同的 seq 再次发出。",
    ),
    "rt.acked": (
        "The ACK arrives: now, and only now, the copy is deleted. This is the feedback the "
        "notes speak of: keep a copy until the other side says it got it.",
        "ACK 到达了:这时,也只有这时,副本才被删除。这就是笔记里说的反馈机制:给对方发消息后"
        "保留一个副本,直到对方回应收到了才删除。",
    ),
    "rt.section.vanish": (
        "The server vanishes: every segment to it is lost (max_retransmits = {tries})",
        "服务端消失了:发给它的报文段全部丢失(max_retransmits = {tries})",
    ),
    "rt.cut": (
        "The client sends again, but the server is gone, as if its cable were pulled: "
        "nothing answers, not even a reset. Watch the gaps between the tries: each timeout "
        "doubles the RTO (exponential backoff), so a congested network is not flooded with "
        "copies.",
        "客户端再次发送,可是服务端已经不在了,就像网线被拔掉:没有任何回应,连复位都没有。注意"
        "每次重试之间的间隔:每超时一次,RTO 就翻一倍(指数退避),免得向拥塞的网络灌入更多副本。",
    ),
    "rt.gave_up": (
        "After {tries} retransmissions the last timeout ends it: the client gives up, the "
        "connection is CLOSED and the application gets 'connection timed out' (ETIMEDOUT): "
        "the notes' 'after a number of tries without an answer, the data is deleted'. "
        "Linux tries 15 times, about 15 minutes; this lesson sets {tries}.",
        "重传 {tries} 次之后,最后一次超时宣告结束:客户端放弃,连接进入 CLOSED,应用程序得到"
        "“连接超时”(ETIMEDOUT)。这就是笔记里说的“达到一定次数的发送,若得不到确认则删除数据”。"
        "Linux 默认重试 15 次,大约 15 分钟;本课设为 {tries} 次。",
    ),
    "rt.claim": (
        "a lost segment is resent from the copy kept until it is acknowledged; each "
        "timeout doubles the RTO; after the configured number of tries the connection "
        "gives up.",
        "丢失的报文段会凭着保留到确认为止的副本重发;每次超时 RTO 翻倍;达到设定的重试次数后"
        "放弃连接。",
    ),
    "rt.check.copy": (
        "{kept} bytes were kept unacknowledged, and the copy went again with the same seq={seq}",
        "{kept} 字节作为未确认的副本保留着,并以相同的 seq={seq} 重发",
    ),
    "rt.check.delivered": ("the server received {data} in the end", "服务端最终收到了 {data}"),
    "rt.check.backoff": (
        "seconds between the tries: {intervals}, each twice the one before",
        "每次重试的间隔(秒):{intervals},每次都是前一次的两倍",
    ),
    "rt.check.gave_up": (
        "{tries} retransmissions (the limit is {limit}), then TimedOut and CLOSED",
        "重传 {tries} 次(上限 {limit} 次),然后超时(TimedOut)并进入 CLOSED",
    ),
    # ------------------------------------------------------------------ backlog
    "bl.title": (
        "listen(backlog): the half-connection pool and the accept queue",
        "listen(backlog):半连接池与全连接队列",
    ),
    "bl.summary": (
        "fill both queues behind listen(2) and see what the next client meets",
        "把 listen(2) 背后的两个队列填满,看下一个客户端会遇到什么",
    ),
    "bl.listen": (
        "The server calls listen({backlog}). Like Linux, synack's TCP keeps two queues for "
        "it: the SYN queue (the notes' half-connection pool: handshakes begun, not "
        "finished) and the accept queue (handshakes finished, waiting for accept()). SYN "
        "cookies are off here; lesson syn-flood turns them on.",
        "服务端调用 listen({backlog})。和 Linux 一样,synack 的 TCP 为它维护两个队列:SYN 队列"
        "(笔记里的半连接池:握手已开始但还没完成)和全连接队列(握手已完成,等待 accept() 取走)。"
        "本课关闭了 SYN cookie,syn-flood 一课会打开它。",
    ),
    "bl.section.accept": (
        "The accept queue: the server's application never calls accept()",
        "全连接队列:服务端程序一直不调用 accept()",
    ),
    "bl.accept_full": (
        "{n} handshakes have finished although nobody called accept(): the kernel does them "
        "alone. The accept queue is now full: Linux lets backlog + 1 = {n} connections wait, "
        "and so does synack.",
        "虽然没人调用 accept(),{n} 次握手都完成了:握手由内核独立完成。现在全连接队列满了:"
        "Linux 允许 backlog + 1 = {n} 个连接在这里等待,synack 也一样。",
    ),
    "bl.dropped": (
        "Client {tag} sends a SYN and meets silence: with the accept queue full, the server "
        "drops the SYN. No SYN+ACK, and no reset either, so {tag} does not fail: it waits "
        "in SYN_SENT.",
        "客户端 {tag} 发出 SYN,却石沉大海:全连接队列已满,服务端直接丢弃这个 SYN。没有 "
        "SYN+ACK,也没有复位,所以 {tag} 不会报错,只是停在 SYN_SENT 状态等待。",
    ),
    "bl.retry": (
        "Its SYN retransmission timer fires and {tag} tries again: dropped again. To the "
        "user, connect() just seems slow.",
        "它的 SYN 重传定时器到时,{tag} 再试一次:又被丢弃。在用户看来,connect() 只是变慢了。",
    ),
    "bl.accept_one": (
        "The application finally calls accept() and takes one connection: there is room again.",
        "服务端程序终于调用 accept(),取走了一个连接:队列又有空位了。",
    ),
    "bl.in": (
        "{tag}'s next SYN is answered, and {tag} gets in.",
        "{tag} 下一次发出的 SYN 得到了回应,{tag} 连上了。",
    ),
    "bl.section.syn": (
        "The SYN queue (half-connection pool): clients that never finish the handshake",
        "SYN 队列(半连接池):永远不完成握手的客户端",
    ),
    "bl.syn_full": (
        "Clients {tags} send a SYN and never answer the SYN+ACK. Each holds a place in the "
        "SYN queue, in SYN_RCVD, while the server resends its SYN+ACK. The pool is full: "
        "{n} half-open connections.",
        "客户端 {tags} 发出 SYN 后,再也不回应 SYN+ACK。每个都在 SYN 队列里占着一个位置,处于 "
        "SYN_RCVD 状态,服务端不断重发 SYN+ACK。半连接池满了:{n} 个半连接。",
    ),
    "bl.syn_dropped": (
        "Client {tag} arrives: the half-connection pool is full, and its SYN is dropped as before.",
        "客户端 {tag} 来了:半连接池已满,它的 SYN 和前面一样被丢弃。",
    ),
    "bl.expired": (
        "After {retries} unanswered retransmissions of its SYN+ACK, a half-open connection "
        "expires and leaves the pool.",
        "SYN+ACK 重发 {retries} 次仍无回应,半连接超时,离开半连接池。",
    ),
    "bl.syn_in": (
        "With room in the pool, {tag}'s next SYN gets in.",
        "半连接池有了空位,{tag} 下一次发出的 SYN 就进来了。",
    ),
    "bl.lesson": (
        "So listen({backlog}) does not mean 'at most {backlog} clients': it bounds the "
        "clients waiting. A full queue refuses no one; it makes them wait and retry. A "
        "server that calls accept() promptly rarely fills it.",
        "所以 listen({backlog}) 并不是“最多 {backlog} 个客户端”:它限制的是排队等待的客户端数。"
        "队列满了也不会拒绝谁,只会让对方等待、重试。及时调用 accept() 的服务端很少会把它填满。",
    ),
    "bl.claim": (
        "listen(backlog) bounds two queues; when either is full the next client's SYN is "
        "dropped without an answer, and that client gets in by retrying once there is "
        "room.",
        "listen(backlog) 限制着两个队列;任何一个满了,下一个客户端的 SYN 都会被悄悄丢弃,等有了"
        "空位,这个客户端靠重试连上。",
    ),
    "bl.check.accept_queue": (
        "with no accept(), the accept queue held {n} finished connections (backlog {backlog} + 1)",
        "没有调用 accept() 时,全连接队列放了 {n} 个已建立的连接(backlog {backlog} + 1)",
    ),
    "bl.check.dropped": (
        "client {tag} got no SYN+ACK while the queue was full ({n} SYNs dropped) and "
        "waited in SYN_SENT",
        "队列满时客户端 {tag} 没有收到 SYN+ACK({n} 个 SYN 被丢弃),停在 SYN_SENT 等待",
    ),
    "bl.check.in_after_accept": (
        "client {tag} got in after one accept()",
        "调用一次 accept() 后,客户端 {tag} 连上了",
    ),
    "bl.check.syn_queue": (
        "the SYN queue held {n} half-open connections and dropped client {tag}'s SYN",
        "SYN 队列里有 {n} 个半连接,客户端 {tag} 的 SYN 被丢弃",
    ),
    "bl.check.in_after_expiry": (
        "client {tag} got in once the half-open connections expired",
        "半连接超时以后,客户端 {tag} 连上了",
    ),
    # ------------------------------------------------------------------ syn-flood
    "sf.title": ("SYN flood and SYN cookies", "SYN 洪水攻击与 SYN cookie"),
    "sf.summary": (
        "forged SYNs fill the half-connection pool; SYN cookies let real clients in",
        "伪造的 SYN 塞满半连接池;SYN cookie 让真正的客户端照样连得上",
    ),
    "sf.section.without": (
        "Under a SYN flood, without SYN cookies",
        "遭受 SYN 洪水攻击,不用 SYN cookie",
    ),
    "sf.section.with": ("The same flood, with SYN cookies", "同样的洪水攻击,使用 SYN cookie"),
    "sf.flood": (
        "An attacker sends {rate} SYNs a second, each from a made-up address where nothing "
        "lives, so no one ever answers the server's SYN+ACK (these are counted, not drawn). "
        "Each forged SYN takes a place in the half-connection pool, listen({backlog}), and "
        "keeps it for about a minute while the server resends its SYN+ACK: the server sits "
        "in SYN_RCVD, as the notes say. Real clients, drawn here, connect now and then and "
        "give up after {patience} s.",
        "攻击者每秒发出 {rate} 个 SYN,每个都来自一个虚构的、没有主机的地址,所以服务端的 "
        "SYN+ACK 永远没人回应(这些报文只计数,不画出)。每个伪造的 SYN 都在半连接池 "
        "listen({backlog}) 里占一个位置,服务端不断重发 SYN+ACK,这个位置要被占大约一分钟:正如"
        "笔记所说,服务端一直处于 SYN_RCVD 状态。图中画出的是真正的客户端,它们不时来连接,"
        "等 {patience} 秒连不上就放弃。",
    ),
    "sf.gave_up": (
        "Client {tag} gives up after {seconds} s: every SYN it sent was dropped, the pool "
        "being full of forged entries.",
        "客户端 {tag} 等了 {seconds} 秒后放弃:半连接池被伪造的连接占满,它发出的每个 SYN 都被丢弃了。",
    ),
    "sf.in": ("Client {tag} is in.", "客户端 {tag} 连上了。"),
    "sf.locked_out": (
        "{n} of {total} real clients got in; the server dropped {dropped} SYNs. A trickle of "
        "small forged packets was enough to shut the door.",
        "{total} 个真实客户端中有 {n} 个连上;服务端丢弃了 {dropped} 个 SYN。一点点伪造的小报文,"
        "就足以把门堵死。",
    ),
    "sf.cookies": (
        "{n} of {total} real clients got in. With the pool full, the server answers each "
        "SYN with a SYN+ACK whose sequence number is a cookie, a keyed hash of the "
        "connection's addresses, ports and the time, and keeps nothing. Only a client that "
        "really received it can send back the ACK of cookie + 1, and from that ACK alone "
        "the server rebuilds the connection. Forged SYNs cost it no memory ({cookies} "
        "cookies sent).",
        "{total} 个真实客户端中有 {n} 个连上了。半连接池满了以后,服务端对每个 SYN 回一个 "
        "SYN+ACK,它的序列号就是 cookie:由连接的地址、端口和时间加上密钥算出的散列值,服务端"
        "自己什么都不保存。只有真正收到它的客户端,才能回一个确认号为 cookie + 1 的 ACK;服务端"
        "仅凭这个 ACK 就能重建连接。伪造的 SYN 不再占用服务端的内存(共发出 {cookies} 个 cookie)。",
    ),
    "sf.claim": (
        "a SYN flood fills the half-connection pool and locks legitimate clients out; with "
        "SYN cookies they all get in.",
        "SYN 洪水攻击会塞满半连接池,把正常的客户端挡在门外;使用 SYN cookie 后,它们全都能连上。",
    ),
    "sf.check.full": (
        "the SYN queue was full ({backlog}) whenever a real client came: {samples}",
        "每当真实客户端到来,SYN 队列都是满的({backlog}):{samples}",
    ),
    "sf.check.without": (
        "without cookies, {n} of {total} real clients got in",
        "不用 cookie:{total} 个真实客户端中 {n} 个连上",
    ),
    "sf.check.with": (
        "with cookies, {n} of {total} got in ({cookies} cookies sent)",
        "使用 cookie:{total} 个中 {n} 个连上(发出 {cookies} 个 cookie)",
    ),
    # ------------------------------------------------------------------ layers
    "layers.title": (
        "Layers: one chat message, wrapped for the wire",
        "分层:一条聊天消息,逐层封装上路",
    ),
    "layers.summary": (
        "the app's frame in a TCP segment in an IPv4 packet in an Ethernet frame, byte by byte",
        "应用的帧装进 TCP 报文段、IPv4 数据包、以太网帧,逐字节看清",
    ),
    "layers.send": (
        "After the handshake, the chat client says '{text}'. The ladder shows the one "
        "segment that carries it; below, the same bytes layer by layer.",
        "握手之后,聊天客户端说了一句“{text}”。图中是承载它的那一个报文段;下面逐层展开同样的字节。",
    ),
    "layers.intro": (
        "Sending goes down the layers, and each wraps what it is given in its own header; "
        "receiving goes up, each layer taking its header off. Offsets count from the start "
        "of each layer's bytes; decoded values are on the right.",
        "发送时数据自上而下经过各层,每一层都给收到的数据套上自己的首部;接收时自下而上,每一层"
        "拆掉自己的首部。偏移量从每一层数据的开头算起;右边是解码后的值。",
    ),
    "layers.app": (
        "The application's own protocol (docs/PROTOCOL.md): a 9-byte header, type and "
        "length, then the message as UTF-8 JSON. The length before the data is what solves "
        "'sticky packets' (lesson: sticky).",
        "应用层自己的协议(docs/PROTOCOL.md):9 字节的首部(类型和长度),后面是 UTF-8 编码的 JSON "
        "消息。先发长度再发数据,正是解决“粘包”的办法(见 sticky 一课)。",
    ),
    "layers.tcp": (
        "TCP adds {header} bytes: 20 of fixed header and 12 of options (timestamps). The "
        "ports name the programs at each end (IP + port identifies one program on one "
        "machine); seq and ack make the byte stream reliable. The ladder showed seq=1: "
        "counted from the initial sequence number, while the header holds the real one.",
        "TCP 加上 {header} 字节:20 字节固定首部和 12 字节选项(时间戳)。端口标识两端的程序"
        "(IP + 端口唯一确定一台电脑上的一个程序);seq 和 ack 让字节流变得可靠。图中显示的 "
        "seq=1 是从初始序列号算起的相对值,首部里存的是真实的序列号。",
    ),
    "layers.ip": (
        "IP adds 20 bytes: the addresses of the two machines, the protocol inside (6 = "
        "TCP), a time to live that each router lowers by one, and a checksum of this "
        "header alone.",
        "IP 加上 20 字节:两台机器的地址、里面装的协议(6 = TCP)、每经过一个路由器就减一的生存"
        "时间(TTL),以及只覆盖这个首部的校验和。",
    ),
    "layers.ethernet": (
        "Ethernet adds 14 bytes in front, the MAC addresses of the two network cards on "
        "this one link (made up here; on a real LAN, ARP finds the next hop's MAC from its "
        "IP), and a 4-byte CRC behind, computed by the card. Each router takes this frame "
        "off and builds a new one for the next link; the IP packet inside travels end to "
        "end unchanged, apart from its TTL and checksum.",
        "以太网在前面加 14 字节:这一段链路上两块网卡的 MAC 地址(这里是虚构的;真实局域网里由 "
        "ARP 根据 IP 查出下一跳的 MAC),后面加 4 字节由网卡计算的 CRC 校验。每个路由器都会拆掉"
        "这个帧,为下一段链路重新封装;里面的 IP 数据包一路不变,只有 TTL 和校验和会改。",
    ),
    "layers.physical": (
        "The physical layer then sends it, after an 8-byte preamble, as {bits} bits of "
        "electrical, light or radio signal: the 0s and 1s of the notes.",
        "最后,物理层把它连同 8 字节的前导码一起,作为 {bits} 个比特的电、光或无线电信号发出去:"
        "也就是笔记里说的 0 和 1。",
    ),
    "layers.carriage": (
        "synack's own TCP (synack --transport synack) travels differently. It runs as an "
        "ordinary program and cannot send raw IP, so each TCP segment, byte for byte the "
        "same, rides as the payload of one UDP datagram whose ports are the TCP ports, "
        "followed by a 4-byte CRC-32 of the segment that catches damage on the way: "
        "{extra} bytes more per segment than TCP straight in IP, but no privileges needed.",
        "synack 自己的 TCP(synack --transport synack)走法不同。它作为普通程序运行,不能直接发送 "
        "IP 包,所以每个 TCP 报文段原封不动地装进一个 UDP 数据报,UDP 端口就是 TCP 端口,后面再跟"
        "一个 4 字节的 CRC-32 校验,用来发现途中的损坏:每个报文段比 TCP 直接装进 IP 多 {extra} "
        "字节,但不需要任何特权。",
    ),
    "layers.table.app": (
        "Application layer: the synack frame ({n} bytes) · OSI 7, application (6, "
        "presentation: UTF-8 JSON) · TCP/IP: application",
        "应用层:synack 帧({n} 字节)· OSI 第 7 层应用层(第 6 层表示层:UTF-8 JSON)· TCP/IP:应用层",
    ),
    "layers.table.tcp": (
        "TCP segment ({n} bytes, {header} of header) · OSI 4, transport · TCP/IP: transport",
        "TCP 报文段({n} 字节,首部 {header} 字节)· OSI 第 4 层传输层 · TCP/IP:传输层",
    ),
    "layers.table.ip": (
        "IPv4 packet ({n} bytes) · OSI 3, network · TCP/IP: internet",
        "IPv4 数据包({n} 字节)· OSI 第 3 层网络层 · TCP/IP:网络层",
    ),
    "layers.table.ethernet": (
        "Ethernet frame ({n} bytes with the CRC) · OSI 2, data link · TCP/IP: link",
        "以太网帧(连同 CRC 共 {n} 字节)· OSI 第 2 层数据链路层 · TCP/IP:链路层",
    ),
    "layers.table.udp": (
        "synack's own carriage, not a real TCP network: the UDP datagram ({n} bytes) · OSI "
        "4, transport · TCP/IP: transport",
        "synack 自己的承载方式,不是真实网络里的 TCP:UDP 数据报({n} 字节)· OSI 第 4 层传输层 "
        "· TCP/IP:传输层",
    ),
    "layers.table.udp_ip": (
        "synack's own carriage: the IPv4 packet around it ({n} bytes, protocol 17 = UDP) "
        "· OSI 3, network · TCP/IP: internet",
        "synack 自己的承载方式:外面的 IPv4 数据包({n} 字节,协议 17 = UDP)· OSI 第 3 层网络层 "
        "· TCP/IP:网络层",
    ),
    "layer.app": ("application data", "应用层数据"),
    "layer.tcp": ("TCP header", "TCP 首部"),
    "layer.ip": ("IPv4 header", "IPv4 首部"),
    "layer.ethernet": ("Ethernet header and trailer", "以太网首部和尾部"),
    "layer.udp": ("UDP header", "UDP 首部"),
    "field.app.type": ("type", "类型"),
    "field.app.length": ("length", "长度"),
    "field.app.body": ("body (JSON)", "正文(JSON)"),
    "field.tcp.sport": ("source port", "源端口"),
    "field.tcp.dport": ("destination port", "目的端口"),
    "field.tcp.seq": ("sequence number", "序列号"),
    "field.tcp.ack": ("acknowledgment number", "确认号"),
    "field.tcp.offset": ("data offset (header words)", "数据偏移(首部长度)"),
    "field.tcp.flags": ("flags", "标志位"),
    "field.tcp.window": ("window", "窗口大小"),
    "field.tcp.checksum": ("checksum", "校验和"),
    "field.tcp.urgent": ("urgent pointer", "紧急指针"),
    "field.tcp.options": ("options", "选项"),
    "field.tcp.data": ("data: the app's frame (bytes)", "数据:应用层的帧(字节数)"),
    "field.ip.version": ("version, header length", "版本、首部长度"),
    "field.ip.tos": ("DSCP/ECN", "服务类型(DSCP/ECN)"),
    "field.ip.length": ("total length", "总长度"),
    "field.ip.id": ("identification", "标识"),
    "field.ip.frag": ("flags, fragment offset", "标志、片偏移"),
    "field.ip.ttl": ("time to live (TTL)", "生存时间(TTL)"),
    "field.ip.protocol": ("protocol", "协议"),
    "field.ip.checksum": ("header checksum", "首部校验和"),
    "field.ip.src": ("source address", "源地址"),
    "field.ip.dst": ("destination address", "目的地址"),
    "field.ip.data_tcp": ("data: the TCP segment (bytes)", "数据:TCP 报文段(字节数)"),
    "field.ip.data_udp": ("data: the UDP datagram (bytes)", "数据:UDP 数据报(字节数)"),
    "field.eth.dst": ("destination MAC", "目的 MAC 地址"),
    "field.eth.src": ("source MAC", "源 MAC 地址"),
    "field.eth.type": ("EtherType", "以太网类型"),
    "field.eth.data": ("data: the IPv4 packet (bytes)", "数据:IPv4 数据包(字节数)"),
    "field.eth.fcs": ("frame check sequence (CRC-32)", "帧校验序列(CRC-32)"),
    "field.udp.sport": ("source port (= TCP's)", "源端口(与 TCP 相同)"),
    "field.udp.dport": ("destination port (= TCP's)", "目的端口(与 TCP 相同)"),
    "field.udp.length": ("length", "长度"),
    "field.udp.checksum": ("checksum", "校验和"),
    "field.udp.data": (
        "data: the TCP segment, unchanged (bytes)",
        "数据:原封不动的 TCP 报文段(字节数)",
    ),
    "field.udp.crc32": (
        "CRC-32 of the segment (synack's check against damage on the way)",
        "报文段的 CRC-32(synack 用来发现途中损坏的校验)",
    ),
    "layers.claim": (
        "each layer adds only its own header around the layer above, which it leaves "
        "unchanged, and unwrapping the frame gives the message back.",
        "每一层只在上一层外面加上自己的首部,里面原封不动;把帧逐层拆开,就能还原出原来的消息。",
    ),
    "layers.check.tcp": (
        "the TCP segment carries the {n}-byte frame unchanged after its {header}-byte "
        "header, and the server read exactly that",
        "TCP 报文段在 {header} 字节的首部之后原样装着 {n} 字节的帧,服务端读到的正是它",
    ),
    "layers.check.ip": (
        "the IPv4 packet is {n} bytes, 20 + the segment, protocol 6, and both checksums verify",
        "IPv4 数据包共 {n} 字节,即 20 + 报文段,协议号 6,两个校验和都正确",
    ),
    "layers.check.ethernet": (
        "the Ethernet frame is {n} bytes: 14 + the packet + 4 of CRC, type 0x0800",
        "以太网帧共 {n} 字节:14 + 数据包 + 4 字节 CRC,类型 0x0800",
    ),
    "layers.check.unwrap": (
        "unwrapped layer by layer, the frame gives back the message '{text}'",
        "把帧逐层拆开,还原出了消息“{text}”",
    ),
    "layers.check.udp": (
        "in synack's carriage the {n}-byte UDP datagram holds the same segment and its "
        "CRC-32, and both checks verify",
        "在 synack 的承载方式里,{n} 字节的 UDP 数据报装着同一个报文段和它的 CRC-32,两项校验都正确",
    ),
    # ------------------------------------------------------------------ sticky
    "sticky.title": (
        "Sticky packets: TCP is a stream, not messages",
        "粘包:TCP 是字节流,不是一条条消息",
    ),
    "sticky.summary": (
        "two sends come out of one read glued; a length before each message recovers them",
        "两次 send 被一次 recv 粘在一起读出;每条消息前先发长度,就能重新分开",
    ),
    "sticky.section.raw": ("Two messages on a raw stream", "在裸字节流上发两条消息"),
    "sticky.raw": (
        "Real sockets on 127.0.0.1, the operating system's TCP. The sender calls send() "
        "twice, quickly; the receiver is busy elsewhere and calls recv(1024) once, a moment "
        "later.",
        "这一课用 127.0.0.1 上的真实套接字和操作系统的 TCP。发送方连续调用两次 send();接收方"
        "正忙着别的事,稍后才调用一次 recv(1024)。",
    ),
    "sticky.glued": (
        "One recv() returned both, glued into {n} bytes. TCP delivered every byte in order "
        "but kept no boundary between the sends: was it 'hello' + 'world', 'hell' + "
        "'oworld', or one message? The receiver cannot know. This is the notes' 'sticky "
        "packet': a stream has no message boundaries.",
        "一次 recv() 把两条消息一起读了出来,粘成了 {n} 个字节。TCP 按顺序交付了每一个字节,却"
        "没有保留两次 send 之间的边界:到底是 'hello' + 'world',还是 'hell' + 'oworld',还是"
        "一条消息?接收方无从得知。这就是笔记里说的“粘包”:字节流没有消息边界。",
    ),
    "sticky.section.framed": (
        "The fix: the length before the data",
        "解决办法:先发长度,再发数据",
    ),
    "sticky.framed": (
        "Now each message goes as a synack frame: a 9-byte header (the type, and the "
        "length of the body), then the body (docs/PROTOCOL.md). The same two sends, the "
        "same one read.",
        "现在每条消息都按 synack 的帧格式发送:9 字节的首部(类型和正文长度),后面跟正文"
        "(docs/PROTOCOL.md)。同样两次 send,同样一次 recv。",
    ),
    "sticky.recovered": (
        "The read is glued again ({n} bytes), but now the receiver knows where each "
        "message ends: it reads a header, then exactly the length it announces, then the "
        "next header. {count} messages, intact. A message cut across two reads would be "
        "waited for in the same way.",
        "读到的数据又粘在一起了({n} 字节),但现在接收方知道每条消息在哪里结束:先读首部,再按"
        "首部里的长度读正文,然后读下一个首部。{count} 条消息,完好无损。如果一条消息被拆到两次 "
        "recv 里,接收方也会照样等齐剩下的部分。",
    ),
    "sticky.udp": (
        "UDP has no such problem: each recvfrom() returns exactly one datagram (lesson: udp).",
        "UDP 没有这个问题:每次 recvfrom() 恰好返回一个数据报(见 udp 一课)。",
    ),
    "sticky.claim": (
        "TCP keeps no message boundaries: two sends can arrive as one read, and a length "
        "before each message lets the receiver take them apart again.",
        "TCP 不保留消息边界:两次 send 可能被一次 recv 读到;在每条消息前加上长度,接收方就能"
        "重新把它们分开。",
    ),
    "sticky.check.glued": ("{sends} sends, one read: {data}", "{sends} 次 send,一次 recv:{data}"),
    "sticky.check.framed": (
        "with lengths: one read of {n} bytes, split by the lengths into {texts}",
        "加上长度:一次读到 {n} 字节,按长度分出 {texts}",
    ),
    # ------------------------------------------------------------------ many-clients
    "mc.title": ("Serving many clients at once", "同时服务多个客户端"),
    "mc.summary": (
        "one at a time, like the notes' accept loop, against a task per client, like "
        "socketserver's threads",
        "像笔记里的 accept 循环那样一次服务一个,对比像 socketserver 的线程那样每个客户端一个任务",
    ),
    "mc.section.serial": (
        "One client at a time: accept, serve until it hangs up, accept the next",
        "一次一个客户端:accept,服务到对方挂断,再 accept 下一个",
    ),
    "mc.serial": (
        "Real sockets on 127.0.0.1. This server works like the notes' first chat server: "
        "a loop that accepts one connection and serves it until the client leaves. {n} "
        "clients connect, and each says hello.",
        "127.0.0.1 上的真实套接字。这个服务端和笔记里第一个聊天服务端一样:在循环里 accept 一个"
        "连接,一直服务到客户端离开。{n} 个客户端连上来,各自打个招呼。",
    ),
    "mc.all_connected": (
        "All {n} connect() calls succeed at once: the kernel finishes every handshake and "
        "queues the connections for accept() (lesson: backlog), whether the program is "
        "free or not.",
        "{n} 次 connect() 都立即成功:内核完成了每一次握手,把连接放进队列等待 accept()(见 "
        "backlog 一课),不管程序有没有空。",
    ),
    "mc.waiting": (
        "Only #1 is answered. #2 and #3 are connected and their greetings delivered, but "
        "the server is busy with #1 and nobody reads them. Each gets its answer only when "
        "the one before hangs up.",
        "只有 #1 得到了回答。#2 和 #3 已经连上,消息也送到了,但服务端正忙着服务 #1,没人去读。"
        "每个客户端都要等前一个挂断,才能得到回答。",
    ),
    "mc.section.concurrent": (
        "One task per client, like socketserver.ThreadingTCPServer",
        "每个客户端一个任务,就像 socketserver.ThreadingTCPServer",
    ),
    "mc.concurrent": (
        "The same {n} clients. Now the server starts a separate task for each connection "
        "(asyncio tasks here; the notes use socketserver's threads or multiprocessing's "
        "processes for the same idea).",
        "同样 {n} 个客户端。这次服务端为每个连接单独开一个任务(这里是 asyncio 任务;笔记里用 "
        "socketserver 的线程或 multiprocessing 的进程,道理相同)。",
    ),
    "mc.all_answered": (
        "All {n} are answered while all are still connected: no one waits for anyone.",
        "{n} 个客户端都还连着,全部得到了回答:谁也不用等谁。",
    ),
    "mc.lesson": (
        "synack's chat and file servers work the second way, so one slow client never "
        "holds up the others.",
        "synack 的聊天和文件服务端都采用第二种方式,一个慢吞吞的客户端不会拖住其他人。",
    ),
    "mc.claim": (
        "a server that serves one connection at a time keeps the other clients waiting, "
        "connected but unanswered; a task per connection answers them all at once.",
        "一次只服务一个连接的服务端会让其他客户端干等(已经连上,却没人回应);每个连接一个任务,"
        "就能同时回应所有客户端。",
    ),
    "mc.check.serial": (
        "one at a time: never more than 1 served at once, in this order: {order}",
        "一次一个:同一时刻最多服务 1 个,顺序为:{order}",
    ),
    "mc.check.concurrent": (
        "a task each: {most} of {n} served at once, all answered before anyone hung up",
        "每个一个任务:{n} 个中同时服务了 {most} 个,所有人都在有人挂断之前得到回答",
    ),
    # ------------------------------------------------------------------ download
    "dl.title": ("Downloading a file over TCP", "基于 TCP 的文件下载"),
    "dl.summary": (
        "the notes' one recv(1024) gets a piece; the size first gets the whole file, checked",
        "笔记里的一次 recv(1024) 只拿到一块;先发大小,才能拿到整个文件,并且可以校验",
    ),
    "dl.section.naive": (
        "The notes' download client: one recv(1024)",
        "笔记里的下载客户端:一次 recv(1024)",
    ),
    "dl.naive": (
        "Real sockets on 127.0.0.1. The server holds lesson.bin, {size} bytes. As in the "
        "notes, the client sends the name, calls recv(1024) once and saves what it got as "
        "[new]lesson.bin; the server sends the whole file and closes.",
        "127.0.0.1 上的真实套接字。服务端有一个 lesson.bin,共 {size} 字节。和笔记里一样,客户端"
        "发送文件名,调用一次 recv(1024),把收到的内容存为 [new]lesson.bin;服务端发送整个文件后"
        "关闭连接。",
    ),
    "dl.naive_result": (
        "The saved file has {got} of {size} bytes, and nothing said so: no error, no "
        "warning. recv(1024) returns at most 1024 bytes, of whatever has arrived; without "
        "the size, the client could not know it should wait for more.",
        "保存下来的文件只有 {size} 字节中的 {got} 字节,而且没有任何提示:没有报错,也没有警告。"
        "recv(1024) 最多返回 1024 字节,而且到了多少就返回多少;不知道文件大小,客户端也无从知道"
        "还该继续等。",
    ),
    "dl.section.framed": (
        "The fix: the size first, then read until all of it is in",
        "解决办法:先发大小,再读到全部收齐",
    ),
    "dl.framed": (
        "The server answers with the size and the SHA-256 of the file, then the bytes as "
        "one frame whose header holds the length (as synack files does). The client reads "
        "in a loop until it has exactly that many bytes, then checks the digest.",
        "服务端先回复文件大小和 SHA-256 摘要,再把文件内容作为一个帧发送,帧首部里写明长度(synack "
        "files 也是这样做的)。客户端循环读取,直到恰好收齐这么多字节,再核对摘要。",
    ),
    "dl.framed_result": (
        "{size} bytes, every one, and the SHA-256 matches: the file arrived whole and unchanged.",
        "{size} 字节一个不少,SHA-256 也对得上:文件完整无误地到达了。",
    ),
    "dl.section.missing": ("Asking for a file that is not there", "请求一个不存在的文件"),
    "dl.missing": (
        "The notes' server only prints 'no file to download' on its own screen and sends "
        "nothing back. Here it answers with an error, and the client can tell its user why.",
        "笔记里的服务端只在自己的屏幕上打印“没有要下载的文件”,什么也不回。这里服务端回复一个"
        "错误,客户端就能告诉用户原因。",
    ),
    "dl.claim": (
        "one recv(1024) silently gets only the start of a file; sending the size first "
        "lets the client read exactly the whole file, and the checksum proves it.",
        "一次 recv(1024) 只能拿到文件的开头,而且悄无声息;先发送大小,客户端才能恰好读完整个"
        "文件,校验和可以证明这一点。",
    ),
    "dl.check.naive": (
        "one recv(1024) saved {got} of {size} bytes, and the digest does not match",
        "一次 recv(1024) 只保存了 {size} 字节中的 {got} 字节,摘要不符",
    ),
    "dl.check.framed": (
        "size first: {size} bytes saved, SHA-256 verified",
        "先发大小:保存了 {size} 字节,SHA-256 校验通过",
    ),
    "dl.check.missing": (
        "the missing file got an error answer that names it",
        "请求不存在的文件,得到了写明文件名的错误回复",
    ),
    # ------------------------------------------------------------------ udp
    "udp.title": ("UDP: boundaries kept, loss not repaired", "UDP:保留消息边界,丢了不补"),
    "udp.summary": (
        "datagrams through a lossy link: one recvfrom per sendto, and nothing resends the lost one",
        "数据报经过一条会丢包的链路:一次 sendto 对应一次 recvfrom,丢了的没人重发",
    ),
    "udp.intro": (
        "Real UDP sockets on 127.0.0.1. There is no connection and no handshake: the "
        "sender just calls sendto() with the receiver's address, like sending a text "
        "message. Between them sits a lossy link, a small relay that drops the second "
        "datagram (loopback itself never loses any).",
        "127.0.0.1 上的真实 UDP 套接字。没有连接,也没有握手:发送方直接用对方的地址调用 "
        "sendto(),就像发短信一样。中间有一条会丢包的链路:一个小小的中转程序,它会丢掉第二个"
        "数据报(回环网卡本身从不丢包)。",
    ),
    "udp.lost": ("The second datagram is lost on the link.", "第二个数据报在链路上丢了。"),
    "udp.boundaries": (
        "Each recvfrom() returns exactly one datagram, as it was sent: {n} reads for {n} "
        "datagrams, never glued together, never cut apart. UDP keeps message boundaries "
        "(compare lesson sticky).",
        "每次 recvfrom() 恰好返回一个完整的数据报,和发送时一模一样:{n} 个数据报读了 {n} 次,"
        "既没有粘在一起,也没有被拆开。UDP 保留消息边界(对比 sticky 一课)。",
    ),
    "udp.no_repair": (
        "And b'two' is simply gone. The sender sent {sent} datagrams and no more: no "
        "acknowledgement, no timer, no retransmission, and no one told it of the loss. An "
        "application that needs reliability over UDP must build it itself, as synack's "
        "UDP chat does with sequence numbers, acknowledgements and resends "
        "(docs/PROTOCOL.md §3).",
        "而 b'two' 就这样没了。发送方一共只发了 {sent} 个数据报:没有确认,没有定时器,没有重传,"
        "也没有人告诉它丢了包。要在 UDP 上可靠地传输,应用程序只能自己动手,就像 synack 的 UDP "
        "聊天那样,用序号、确认和重发来实现(docs/PROTOCOL.md §3)。",
    ),
    "udp.claim": (
        "UDP keeps each datagram whole, one recvfrom() per sendto(), and does not repair "
        "loss: the dropped datagram never arrives and nothing sends it again.",
        "UDP 保持每个数据报完整,一次 sendto() 对应一次 recvfrom(),但不修复丢包:丢掉的数据报"
        "永远不会到达,也没有人重发。",
    ),
    "udp.check.boundaries": (
        "the receiver read one datagram per read: {got}",
        "接收方每次读到一个数据报:{got}",
    ),
    "udp.check.not_repaired": (
        "the sender sent {sent} datagrams in all; {lost} never arrived and was never sent again",
        "发送方一共只发了 {sent} 个数据报;{lost} 始终没有到达,也从未被重发",
    ),
}
