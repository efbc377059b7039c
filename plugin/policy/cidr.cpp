#include "cidr.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace podfence::policy {

std::array<std::uint8_t, 16> mask_addr(const std::array<std::uint8_t, 16>& a, unsigned len) {
    std::array<std::uint8_t, 16> out{};
    for (unsigned byte = 0; byte < 16; ++byte) {
        if (len >= (byte + 1) * 8)
            out[byte] = a[byte];
        else if (len > byte * 8)
            out[byte] = a[byte] & static_cast<std::uint8_t>(0xff << (8 - (len - byte * 8)));
    }
    return out;
}

bool cidr_contains(const Cidr& c, std::uint8_t family, const std::array<std::uint8_t, 16>& addr) {
    return c.family == family && mask_addr(addr, c.prefix_len) == c.addr;
}

bool cidr_covers(const Cidr& outer, const Cidr& inner) {
    return outer.family == inner.family && inner.prefix_len >= outer.prefix_len &&
           mask_addr(inner.addr, outer.prefix_len) == outer.addr;
}

namespace {
// "<text>" is not a CIDR: <reason>. Appended, not `"\"" + std::string(...)`:
// GCC 12 at -O3 flags literal + temporary string with a false -Wrestrict.
std::string not_a_cidr(std::string_view text, std::string_view reason) {
    std::string s;
    s.append(1, '"').append(text).append("\" is not a CIDR: ").append(reason);
    return s;
}
} // namespace

std::optional<Cidr> parse_cidr(std::string_view text, std::string& why) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) {
        why = not_a_cidr(text, "missing /prefix-length");
        return std::nullopt;
    }
    const std::string addr_text(text.substr(0, slash));
    const std::string_view len_text = text.substr(slash + 1);

    Cidr c;
    if (addr_text.find(':') != std::string::npos) {
        c.family = PF_FAMILY_V6;
        if (inet_pton(AF_INET6, addr_text.c_str(), c.addr.data()) != 1) {
            why = not_a_cidr(text, "bad IPv6 address");
            return std::nullopt;
        }
    } else {
        c.family = PF_FAMILY_V4;
        if (inet_pton(AF_INET, addr_text.c_str(), c.addr.data()) != 1) {
            why = not_a_cidr(text, "bad IPv4 address");
            return std::nullopt;
        }
    }

    // Plain decimal digits only: from_chars alone would accept nothing else,
    // but we also refuse an empty length and absurdly long digit strings.
    unsigned len = 0;
    const auto* first = len_text.data();
    const auto* last = first + len_text.size();
    const auto [ptr, ec] = std::from_chars(first, last, len);
    if (len_text.empty() || len_text.size() > 3 || ec != std::errc() || ptr != last) {
        why = not_a_cidr(text, "bad prefix length");
        return std::nullopt;
    }
    if (len > family_bits(c.family)) {
        why = not_a_cidr(text, "prefix length " + std::to_string(len) + " is more than " +
                                   std::to_string(family_bits(c.family)));
        return std::nullopt;
    }
    c.prefix_len = static_cast<std::uint8_t>(len);
    c.addr = mask_addr(c.addr, len);
    return c;
}

std::string format_addr(std::uint8_t family, const std::array<std::uint8_t, 16>& addr) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == PF_FAMILY_V6 ? AF_INET6 : AF_INET, addr.data(), buf, sizeof(buf));
    return buf;
}

std::string format_cidr(const Cidr& c) {
    return format_addr(c.family, c.addr) + "/" + std::to_string(c.prefix_len);
}

} // namespace podfence::policy
