// Text address -> the 16-byte form the policy model uses (v4 in the first 4).
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>

#include <doctest/doctest.h>

inline std::array<std::uint8_t, 16> addr(const char* text) {
    std::array<std::uint8_t, 16> a{};
    const int af = std::strchr(text, ':') ? AF_INET6 : AF_INET;
    REQUIRE(inet_pton(af, text, a.data()) == 1);
    return a;
}
