#!/usr/bin/env python3
"""Hand-written IPv4/IPv6 packets for the hostile scenarios
(integration/cases/hostile_*.sh), sent through raw sockets as given, as a pod
with CAP_NET_RAW can. Called through raw_send (integration/checks.sh).

  rawpkt.py udp SRC DST PORT TAG
      one UDP datagram SRC:40000 -> DST:PORT carrying TAG, the IP header
      written by hand (IPPROTO_RAW, IP_HDRINCL implied): the kernel takes
      the source as given, even one that is not the sender's.
  rawpkt.py port-unreachable CADDR PEER
      to CADDR, an ICMP (IPv4) / ICMPv6 port unreachable quoting the 13-byte
      UDP datagram CADDR:5555 -> PEER:7999, as if CADDR had sent it to PEER.
"""
import socket
import struct
import sys


def csum(b):
    """The Internet checksum (RFC 1071) of b."""
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def ip_header(src_b, dst_b, payload_len, proto, ident):
    """An IPv6 header (16-byte addresses) or an IPv4 one with its checksum; TTL 64."""
    if len(src_b) == 16:
        return struct.pack("!IHBB", 6 << 28, payload_len, proto, 64) + src_b + dst_b
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident, 0, 64, proto, 0, src_b, dst_b)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]


def udp(src, dst, port, tag):
    fam = family(dst)
    s_b, d_b = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
    tag = tag.encode()
    ulen = 8 + len(tag)
    seg = struct.pack("!HHHH", 40000, int(port), ulen, 0) + tag
    v6 = fam == socket.AF_INET6
    pseudo = s_b + d_b + (struct.pack("!IxxxB", ulen, 17) if v6 else struct.pack("!xBH", 17, ulen))
    # a computed 0 goes out as 0xFFFF: 0 would mean "no checksum"
    seg = seg[:6] + struct.pack("!H", csum(pseudo + seg) or 0xFFFF) + seg[8:]
    sock = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)  # header included
    sock.sendto(ip_header(s_b, d_b, ulen, 17, 0x1234) + seg, (dst, 0))


def port_unreachable(caddr, peer):
    fam = family(peer)
    c_b, p_b = socket.inet_pton(fam, caddr), socket.inet_pton(fam, peer)
    quoted = ip_header(c_b, p_b, 13, 17, 1) + struct.pack("!HHHH", 5555, 7999, 13, 0)
    if fam == socket.AF_INET6:
        icmp = struct.pack("!BBHI", 1, 4, 0, 0) + quoted  # the kernel fills the checksum
        proto = socket.IPPROTO_ICMPV6
    else:
        icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
        icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
        proto = socket.IPPROTO_ICMP
    socket.socket(fam, socket.SOCK_RAW, proto).sendto(icmp, (caddr, 0))


KINDS = {"udp": (udp, 4), "port-unreachable": (port_unreachable, 2)}

if __name__ == "__main__":
    kind, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if kind not in KINDS or len(args) != KINDS[kind][1]:
        sys.exit(__doc__)
    KINDS[kind][0](*args)
