// CIDR text <-> Cidr, and the bit arithmetic the parser, compiler and
// evaluator share (one definition of "address in prefix").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy.hpp"

namespace podfence::policy {

inline constexpr unsigned family_bits(std::uint8_t family) {
    return family == PF_FAMILY_V6 ? 128 : 32;
}

// "a.b.c.d/n" or "x::/n". Host bits are masked (Kubernetes accepts them set).
// nullopt with `why` filled when the text is not a CIDR.
std::optional<Cidr> parse_cidr(std::string_view text, std::string& why);
std::string format_cidr(const Cidr& c);
std::string format_addr(std::uint8_t family, const std::array<std::uint8_t, 16>& addr);

// Bit i (0 = most significant of addr[0]).
inline bool addr_bit(const std::array<std::uint8_t, 16>& a, unsigned i) {
    return (a[i / 8] >> (7 - i % 8)) & 1;
}

// Zero every bit at or beyond `len`.
std::array<std::uint8_t, 16> mask_addr(const std::array<std::uint8_t, 16>& a, unsigned len);

// Same family and the first c.prefix_len bits agree.
bool cidr_contains(const Cidr& c, std::uint8_t family, const std::array<std::uint8_t, 16>& addr);

// `inner` lies within `outer` (same family, not shorter). Equal counts as inside.
bool cidr_covers(const Cidr& outer, const Cidr& inner);

} // namespace podfence::policy
