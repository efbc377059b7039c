#include "sources.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "cidr.hpp"

namespace podfence::policy {

std::optional<SourceAddr> parse_source(std::string_view text) {
    std::string bare(text.substr(0, text.find('/')));
    SourceAddr s;
    if (inet_pton(AF_INET, bare.c_str(), s.addr.data()) == 1) return s;
    s.family = PF_FAMILY_V6;
    if (inet_pton(AF_INET6, bare.c_str(), s.addr.data()) == 1) return s;
    return std::nullopt;
}

std::string format_source(const SourceAddr& s) {
    return format_addr(s.family, s.addr);
}

bool source_allowed(const PodSources& s, std::uint8_t family, const std::array<std::uint8_t, 16>& src) {
    if (!s.check) return true;
    if (std::all_of(src.begin(), src.end(), [](std::uint8_t b) { return b == 0; })) return true;
    static constexpr std::uint8_t kLinkLocal64[8] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0};
    if (family == PF_FAMILY_V6 && std::memcmp(src.data(), kLinkLocal64, 8) == 0) return true;
    return std::find(s.addrs.begin(), s.addrs.end(), SourceAddr{family, src}) != s.addrs.end();
}

} // namespace podfence::policy
