// Crafted Ethernet frames for BPF_PROG_TEST_RUN: IPv4/IPv6 (options,
// extension headers, fragments), TCP/UDP/SCTP/ICMP/ICMPv6/other, truncation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pftest {

using Addr = std::array<std::uint8_t, 16>; // network order; v4 in bytes 0..3

Addr ip(std::string_view text); // "10.0.0.1" or "fd00::1"; throws on garbage
std::string addr_str(std::uint8_t family, const Addr& a);

constexpr std::uint8_t kTcp = 6, kUdp = 17, kSctp = 132, kIcmp = 1, kIcmp6 = 58, kGre = 47;
constexpr std::uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;

struct Frame {
    std::uint8_t family = 4; // 4 or 6
    Addr src{}, dst{};
    std::uint8_t proto = kTcp;          // as on the wire after extension headers
    std::uint16_t sport = 0, dport = 0; // host order (TCP/UDP/SCTP)
    std::uint8_t tcp_flags = kTcpSyn;
    std::uint8_t icmp_type = 8; // ICMP/ICMPv6
    std::uint16_t icmp_id = 0;  // host order, echo only
    std::uint8_t icmp_code = 0;
    std::uint32_t icmp_info = 0;         // errors: the 4 bytes after the checksum (MTU, pointer)
    std::shared_ptr<const Frame> quoted; // errors: the packet quoted after the ICMP header
    std::uint32_t frag_id = 0x1234;      // fragments: IPv4 id (low 16 bits) or IPv6 fragment id
    bool non_first_fragment = false;     // offset != 0: no L4 header follows
    bool first_fragment = false;         // offset 0, more-fragments set
    std::uint8_t ipv4_option_words = 0;  // extra 4-byte words of IPv4 options
    std::vector<std::uint8_t> v6_ext;    // extension headers in order (0, 43, 60, 44)
    std::uint16_t ethertype = 0;         // 0: from family
    std::size_t truncate_to = 0;         // 0: whole frame
    std::size_t payload = 0;             // bytes after the L4 header

    std::string describe() const;
};

std::vector<std::uint8_t> build(const Frame& f);

// Convenience constructors.
Frame tcp4(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport,
           std::uint8_t flags = kTcpSyn);
Frame udp4(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport);
Frame tcp6(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport,
           std::uint8_t flags = kTcpSyn);
Frame udp6(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport);
Frame ip_proto(std::uint8_t family, std::string_view src, std::string_view dst, std::uint8_t proto,
               std::uint16_t sport = 0, std::uint16_t dport = 0);
Frame icmp(std::uint8_t family, std::string_view src, std::string_view dst, std::uint8_t type,
           std::uint16_t id = 0);
// Same flow, other way round (ports and ICMP echo request<->reply swapped).
Frame reply(const Frame& f, std::uint8_t tcp_flags = kTcpAck);
// ICMP/ICMPv6 error from `src` to `dst` quoting `quoted` from its IP header
// on, all of it (quoted.truncate_to cuts it).
Frame icmp_error(std::string_view src, std::string_view dst, std::uint8_t type, std::uint8_t code,
                 const Frame& quoted, std::uint32_t info = 0);
// f as the first (more follow) or a later fragment of datagram `id`.
Frame fragment(Frame f, bool first, std::uint32_t id = 0x1234);

} // namespace pftest
