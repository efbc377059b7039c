#include "support/frames.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace pftest {

namespace {

void put16(std::vector<std::uint8_t>& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

void put32(std::vector<std::uint8_t>& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v >> 16));
    put16(b, static_cast<std::uint16_t>(v));
}

void put(std::vector<std::uint8_t>& b, const std::uint8_t* p, std::size_t n) {
    b.insert(b.end(), p, p + n);
}

std::uint16_t csum(const std::uint8_t* p, std::size_t n) {
    std::uint32_t s = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2)
        s += (p[i] << 8) | p[i + 1];
    if (n & 1) s += p[n - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(~s);
}

bool ported(std::uint8_t proto) {
    return proto == kTcp || proto == kUdp || proto == kSctp;
}

// Upper-layer header (absent in non-first fragments).
std::vector<std::uint8_t> l4_header(const Frame& f) {
    std::vector<std::uint8_t> h;
    if (f.non_first_fragment) return h;
    if (ported(f.proto)) {
        put16(h, f.sport);
        put16(h, f.dport);
        if (f.proto == kTcp) {
            h.insert(h.end(), 8, 0); // seq, ack
            h.push_back(5 << 4);     // data offset
            h.push_back(f.tcp_flags);
            put16(h, 65535);         // window
            h.insert(h.end(), 4, 0); // checksum, urgent
        } else if (f.proto == kUdp) {
            put16(h, static_cast<std::uint16_t>(8 + f.payload));
            put16(h, 0);
        } else {
            h.insert(h.end(), 8, 0); // SCTP vtag, checksum
        }
    } else if (((f.proto == kIcmp && f.family == 4) || (f.proto == kIcmp6 && f.family == 6)) && f.quoted) {
        h.push_back(f.icmp_type);
        h.push_back(f.icmp_code);
        put16(h, 0);
        put32(h, f.icmp_info);
        std::vector<std::uint8_t> inner = build(*f.quoted);
        h.insert(h.end(), inner.begin() + std::min<std::size_t>(14, inner.size()), inner.end());
    } else if ((f.proto == kIcmp && f.family == 4) || (f.proto == kIcmp6 && f.family == 6)) {
        h.push_back(f.icmp_type);
        h.push_back(f.icmp_code);
        put16(h, 0);
        put16(h, f.icmp_id);
        put16(h, 1);
    } else {
        h.insert(h.end(), 8, 0xab); // opaque payload of another protocol
    }
    return h;
}

} // namespace

Addr ip(std::string_view text) {
    Addr a{};
    std::string s(text);
    if (s.find(':') != std::string::npos) {
        if (inet_pton(AF_INET6, s.c_str(), a.data()) != 1) throw std::invalid_argument("bad IPv6 " + s);
    } else if (inet_pton(AF_INET, s.c_str(), a.data()) != 1) {
        throw std::invalid_argument("bad IPv4 " + s);
    }
    return a;
}

std::string addr_str(std::uint8_t family, const Addr& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == 4 ? AF_INET : AF_INET6, a.data(), buf, sizeof(buf));
    return buf;
}

std::vector<std::uint8_t> build(const Frame& f) {
    std::vector<std::uint8_t> b;
    b.reserve(128); // also keeps GCC 12 at -O3 from a false -Wstringop-overflow on the first insert
    static constexpr std::uint8_t dmac[6] = {0x02, 0, 0, 0, 0, 0x02}, smac[6] = {0x02, 0, 0, 0, 0, 0x01};
    put(b, dmac, 6);
    put(b, smac, 6);
    put16(b, f.ethertype ? f.ethertype : (f.family == 4 ? 0x0800 : 0x86dd));

    std::vector<std::uint8_t> l4 = l4_header(f);
    l4.insert(l4.end(), f.payload, 0x5a);

    if (f.family == 4) {
        std::size_t ihl = 5 + f.ipv4_option_words;
        std::size_t start = b.size();
        b.push_back(static_cast<std::uint8_t>(0x40 | ihl));
        b.push_back(0);
        put16(b, static_cast<std::uint16_t>(ihl * 4 + l4.size()));
        put16(b, static_cast<std::uint16_t>(f.frag_id));
        std::uint16_t frag = f.non_first_fragment ? 185 : 0;          // offset in 8-byte units
        if (f.first_fragment || f.non_first_fragment) frag |= 0x2000; // MF
        put16(b, frag);
        b.push_back(64);
        b.push_back(f.proto);
        put16(b, 0);
        put(b, f.src.data(), 4);
        put(b, f.dst.data(), 4);
        for (std::size_t i = 0; i < f.ipv4_option_words * 4u; ++i)
            b.push_back(1); // NOP options
        std::uint16_t c = csum(&b[start], ihl * 4);
        b[start + 10] = static_cast<std::uint8_t>(c >> 8);
        b[start + 11] = static_cast<std::uint8_t>(c);
    } else {
        std::vector<std::uint8_t> ext;
        std::vector<std::uint8_t> chain = f.v6_ext;
        if ((f.first_fragment || f.non_first_fragment) &&
            std::find(chain.begin(), chain.end(), 44) == chain.end())
            chain.push_back(44);
        for (std::size_t i = 0; i < chain.size(); ++i) {
            std::uint8_t next = i + 1 < chain.size() ? chain[i + 1] : f.proto;
            if (chain[i] == 44) {
                ext.push_back(next);
                ext.push_back(0);
                std::uint16_t off = f.non_first_fragment ? (185 << 3) : 0;
                if (f.first_fragment || f.non_first_fragment) off |= 1; // M flag
                put16(ext, off);
                put32(ext, f.frag_id);
            } else {
                // 16-byte options header (hdrlen 1) exercises the length field.
                ext.push_back(next);
                ext.push_back(1);
                if (chain[i] == 43) {
                    ext.insert(ext.end(), 14, 0); // routing type 0, segments left 0
                } else {
                    ext.insert(ext.end(), {1, 12}); // PadN option covering the rest
                    ext.insert(ext.end(), 12, 0);
                }
            }
        }
        b.push_back(0x60);
        b.insert(b.end(), 3, 0);
        put16(b, static_cast<std::uint16_t>(ext.size() + l4.size()));
        b.push_back(chain.empty() ? f.proto : chain[0]);
        b.push_back(64);
        put(b, f.src.data(), 16);
        put(b, f.dst.data(), 16);
        b.insert(b.end(), ext.begin(), ext.end());
    }
    b.insert(b.end(), l4.begin(), l4.end());
    if (f.truncate_to && f.truncate_to < b.size()) b.resize(f.truncate_to);
    return b;
}

std::string Frame::describe() const {
    std::ostringstream o;
    o << "IPv" << int(family) << " " << addr_str(family, src) << " -> " << addr_str(family, dst) << " proto "
      << int(proto);
    if (ported(proto) && !non_first_fragment) o << " sport " << sport << " dport " << dport;
    if (proto == kTcp && !non_first_fragment) o << " flags 0x" << std::hex << int(tcp_flags) << std::dec;
    if ((proto == kIcmp || proto == kIcmp6) && !non_first_fragment)
        o << " icmp type " << int(icmp_type) << " id " << icmp_id;
    if (non_first_fragment) o << " non-first-fragment";
    if (first_fragment) o << " first-fragment";
    if (first_fragment || non_first_fragment) o << " id 0x" << std::hex << frag_id << std::dec;
    if (quoted) o << " quoting [" << quoted->describe() << "]";
    if (ipv4_option_words) o << " ipv4-options " << int(ipv4_option_words) * 4 << "B";
    if (!v6_ext.empty()) {
        o << " ext";
        for (auto e : v6_ext)
            o << " " << int(e);
    }
    if (ethertype) o << " ethertype 0x" << std::hex << ethertype << std::dec;
    if (truncate_to) o << " truncated to " << truncate_to << "B";
    return o.str();
}

Frame tcp4(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport,
           std::uint8_t flags) {
    Frame f;
    f.src = ip(src);
    f.dst = ip(dst);
    f.sport = sport;
    f.dport = dport;
    f.tcp_flags = flags;
    return f;
}

Frame udp4(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport) {
    Frame f = tcp4(src, sport, dst, dport);
    f.proto = kUdp;
    return f;
}

Frame tcp6(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport,
           std::uint8_t flags) {
    Frame f = tcp4("0.0.0.0", sport, "0.0.0.0", dport, flags);
    f.family = 6;
    f.src = ip(src);
    f.dst = ip(dst);
    return f;
}

Frame udp6(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport) {
    Frame f = tcp6(src, sport, dst, dport);
    f.proto = kUdp;
    return f;
}

Frame ip_proto(std::uint8_t family, std::string_view src, std::string_view dst, std::uint8_t proto,
               std::uint16_t sport, std::uint16_t dport) {
    Frame f;
    f.family = family;
    f.src = ip(src);
    f.dst = ip(dst);
    f.proto = proto;
    f.sport = sport;
    f.dport = dport;
    return f;
}

Frame icmp(std::uint8_t family, std::string_view src, std::string_view dst, std::uint8_t type,
           std::uint16_t id) {
    Frame f = ip_proto(family, src, dst, family == 4 ? kIcmp : kIcmp6);
    f.icmp_type = type;
    f.icmp_id = id;
    return f;
}

Frame icmp_error(std::string_view src, std::string_view dst, std::uint8_t type, std::uint8_t code,
                 const Frame& quoted, std::uint32_t info) {
    Frame f = icmp(quoted.family, src, dst, type);
    f.icmp_code = code;
    f.icmp_info = info;
    f.quoted = std::make_shared<const Frame>(quoted);
    return f;
}

Frame fragment(Frame f, bool first, std::uint32_t id) {
    f.first_fragment = first;
    f.non_first_fragment = !first;
    f.frag_id = id;
    return f;
}

Frame reply(const Frame& f, std::uint8_t tcp_flags) {
    Frame r = f;
    std::swap(r.src, r.dst);
    std::swap(r.sport, r.dport);
    r.tcp_flags = tcp_flags;
    if (f.family == 4 && f.icmp_type == 8)
        r.icmp_type = 0;
    else if (f.family == 4 && f.icmp_type == 0)
        r.icmp_type = 8;
    else if (f.family == 6 && f.icmp_type == 128)
        r.icmp_type = 129;
    else if (f.family == 6 && f.icmp_type == 129)
        r.icmp_type = 128;
    return r;
}

} // namespace pftest
