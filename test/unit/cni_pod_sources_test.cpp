// The source check's inputs: the pod's addresses taken from prevResult, and
// the rule the datapath applies to them (policy::source_allowed).
#include <doctest/doctest.h>

#include "cni/result.hpp"
#include "policy/sources.hpp"

using namespace podfence;
using nlohmann::json;

namespace {

json result(json ips) {
    return {{"cniVersion", "1.0.0"},
            {"interfaces",
             json::array({{{"name", "cni0"}, {"mac", "aa:bb:cc:00:00:01"}},
                          {{"name", "veth1234"}, {"mac", "aa:bb:cc:00:00:02"}},
                          {{"name", "eth0"}, {"mac", "aa:bb:cc:00:00:03"}, {"sandbox", "/run/netns/pod"}},
                          {{"name", "net1"}, {"mac", "aa:bb:cc:00:00:04"}, {"sandbox", "/run/netns/pod"}},
                          {{"name", "eth0"}, {"mac", "aa:bb:cc:00:00:05"}}})},
            {"ips", std::move(ips)}};
}

json ip(const char* address, std::optional<int> interface) {
    json j = {{"address", address}};
    if (interface) j["interface"] = *interface;
    return j;
}

std::vector<std::string> sources(const json& prev, const char* ifname = "eth0") {
    std::vector<std::string> out;
    for (const auto& s : cni::pod_sources(cni::parse_result(prev, "1.0.0"), ifname))
        out.push_back(policy::format_source(s));
    return out;
}

policy::SourceAddr src(const char* text) {
    return *policy::parse_source(text);
}

} // namespace

TEST_CASE("pod sources: the ips of the pod interface, from prevResult") {
    // bridge + host-local: both addresses on interface 2 (eth0, in the sandbox).
    CHECK(sources(result({ip("10.99.0.5/24", 2), ip("fd99::5/64", 2)})) ==
          std::vector<std::string>{"10.99.0.5", "fd99::5"});
    // Another pod interface's address, the bridge's, and a host-side
    // interface that happens to be named eth0 too: not this interface's.
    CHECK(sources(result({ip("10.99.0.5/24", 2), ip("10.98.0.5/24", 3), ip("10.99.0.1/24", 0),
                          ip("10.97.0.1/24", 4)})) == std::vector<std::string>{"10.99.0.5"});
    CHECK(sources(result({ip("10.98.0.5/24", 3)}), "net1") == std::vector<std::string>{"10.98.0.5"});
    // No `interface`: the result does not say where it lives, so it counts.
    CHECK(sources(result({ip("10.99.0.7/24", std::nullopt), ip("fd99::7/64", 3)})) ==
          std::vector<std::string>{"10.99.0.7"});
    // Sorted (v4 first), duplicates once, host bits of the prefix irrelevant.
    CHECK(sources(result(
              {ip("fd99::5/64", 2), ip("10.99.0.9/8", 2), ip("10.99.0.5/32", 2), ip("10.99.0.9/24", 2)})) ==
          std::vector<std::string>{"10.99.0.5", "10.99.0.9", "fd99::5"});
    CHECK(sources(result(json::array())).empty());
}

TEST_CASE("pod sources: the rule the datapath applies") {
    const policy::PodSources on{true, {src("10.99.0.5"), src("fd99::5")}};
    auto allowed = [&](const policy::PodSources& s, const char* text) {
        const auto a = src(text);
        return policy::source_allowed(s, a.family, a.addr);
    };
    CHECK(allowed(on, "10.99.0.5"));
    CHECK(allowed(on, "fd99::5"));
    CHECK(allowed(on, "0.0.0.0"));
    CHECK(allowed(on, "::"));
    CHECK(allowed(on, "fe80::1"));
    CHECK(allowed(on, "fe80::ffff:ffff:ffff:ffff"));
    CHECK_FALSE(allowed(on, "fe80:0:0:1::1")); // fe80::/10, outside fe80::/64
    CHECK_FALSE(allowed(on, "febf::1"));
    CHECK_FALSE(allowed(on, "10.99.0.6"));
    CHECK_FALSE(allowed(on, "fd99::6"));
    CHECK_FALSE(allowed(on, "169.254.0.5"));
    // The same bytes in the other family are another address.
    policy::SourceAddr v6_with_v4_bytes = src("10.99.0.5");
    CHECK_FALSE(policy::source_allowed(on, PF_FAMILY_V6, v6_with_v4_bytes.addr));
    const policy::PodSources off{false, {}};
    CHECK(allowed(off, "10.99.0.6"));
    CHECK(allowed(off, "fd99::6"));
    CHECK_FALSE(policy::parse_source("10.99.0.300").has_value());
    CHECK(policy::parse_source("fd99::5/64") == src("fd99::5"));
}
