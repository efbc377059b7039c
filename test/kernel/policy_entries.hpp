// Hand-written policy map entries (layout: bpf/podfence_abi.h) for kernel tests.
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "policy/compile.hpp"
#include "policy/length_search.hpp"

namespace pftk {

inline podfence::policy::TrieEntry addr_entry(std::uint8_t dir, const char* v4, unsigned len,
                                              std::uint32_t set) {
    podfence::policy::TrieEntry e;
    e.key.prefixlen = PF_LPM_HDR_BITS + len;
    e.key.kind = PF_KIND_ADDR;
    e.key.dir = dir;
    e.key.family = PF_FAMILY_V4;
    ::inet_pton(AF_INET, v4, e.key.data);
    e.val.set = set;
    return e;
}

inline podfence::policy::TrieEntry addr6_any(std::uint8_t dir, std::uint32_t set) {
    podfence::policy::TrieEntry e;
    e.key.prefixlen = PF_LPM_HDR_BITS;
    e.key.kind = PF_KIND_ADDR;
    e.key.dir = dir;
    e.key.family = PF_FAMILY_V6;
    e.val.set = set;
    return e;
}

// proto 0 = any protocol; port 0 = any port of proto.
inline podfence::policy::TrieEntry port_entry(std::uint8_t dir, std::uint32_t set, std::uint8_t proto,
                                              std::uint16_t port, std::uint32_t rule) {
    podfence::policy::TrieEntry e;
    e.key.kind = PF_KIND_PORT;
    e.key.dir = dir;
    e.key.set = set;
    e.key.prefixlen = PF_LPM_HDR_BITS + (proto ? 8 : 0) + (port ? 16 : 0);
    e.key.data[0] = proto;
    std::uint16_t be = htons(port);
    std::memcpy(&e.key.data[1], &be, 2);
    e.val.rule = rule;
    return e;
}

// Ingress: TCP `port` only from `peer`/32 (rule 0). Egress: not isolated.
inline std::vector<podfence::policy::TrieEntry> allow_tcp_from(const char* peer, std::uint16_t port) {
    std::vector<podfence::policy::TrieEntry> v = {
        addr_entry(PF_DIR_INGRESS, peer, 32, 1),
        port_entry(PF_DIR_INGRESS, 1, 6, port, 0),
        addr_entry(PF_DIR_EGRESS, "0.0.0.0", 0, 2),
        addr6_any(PF_DIR_EGRESS, 2),
        port_entry(PF_DIR_EGRESS, 2, 0, 0, PF_RULE_DEFAULT),
    };
    // Plus the markers, ropes and ROOT entries the engine's search walks.
    return podfence::policy::with_search(std::move(v));
}

} // namespace pftk
