"""Print every NTP datagram sent on this network namespace's loopback, with the kernel's time it was sent.

Run by ``realtime_ntpdig.py --trace`` inside each namespace (``ip netns exec NS python lo_capture.py``; root: a
packet socket). One line per datagram leaving an NTP socket (port 123 at either end), flushed as it comes:

    <capture time, POSIX ns> <source port> <destination port> <origin> <receive> <transmit>

the last three the packet's timestamps as 64-bit NTP integers. Loopback shows each datagram twice, going out and
coming in: only the outgoing copy is printed. Stops on SIGTERM.
"""

from __future__ import annotations

import socket
import struct
import sys

from appliance.io.udp import SO_TIMESTAMPNS

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
NTP_PORT = 123
_TIMES = struct.Struct("!QQQ")


def main() -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind(("lo", 0))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    out = sys.stdout
    while True:
        data, ancdata, _flags, addr = sock.recvmsg(2048, socket.CMSG_SPACE(16))
        if addr[2] != PACKET_OUTGOING:
            continue
        stamp = 0
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("@ll", cdata[:16])
                stamp = sec * 1_000_000_000 + nsec
        ip = data[14:]  # loopback frames carry an all-zero Ethernet header
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack_from("!HH", ip, ihl)
        ntp = ip[ihl + 8 :]
        if len(ntp) < 48 or NTP_PORT not in (sport, dport):
            continue
        origin, receive, transmit = _TIMES.unpack_from(ntp, 24)
        out.write(f"{stamp} {sport} {dport} {origin} {receive} {transmit}\n")
        out.flush()


if __name__ == "__main__":
    main()
