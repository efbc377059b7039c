// A small policy for kernel tests that need one in the kernel, compiled as
// the plugin compiles it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policy/compile.hpp"
#include "policy/policy.hpp"

namespace pftk {

// Ingress: TCP `port` only from `peer`/32 (rule 0). Egress: not isolated.
inline std::vector<podfence::policy::PolicyEntry> allow_tcp_from(const std::string& peer,
                                                                 std::uint16_t port) {
    return podfence::policy::compile(podfence::policy::parse_policy(
        R"({"policyTypes": ["Ingress"], "ingress": [{"from": [{"ipBlock": {"cidr": ")" + peer +
        R"(/32"}}], "ports": [{"protocol": "TCP", "port": )" + std::to_string(port) + "}]}]}"));
}

} // namespace pftk
