// prevResult: what the primary plugin created. podfence reads it (to find
// the host veth) and passes it on unchanged, only converted to the netconf's
// cniVersion.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../policy/sources.hpp"

namespace podfence::cni {

struct ResultInterface {
    std::string name;
    std::string mac;
    std::optional<std::string> sandbox; // present => inside a pod netns
};

struct ResultIp {
    std::string address;          // CIDR, e.g. "10.0.0.5/24"
    std::string gateway;          // "" if none
    std::optional<int> interface; // index into interfaces
    int family = 4;               // derived from address
};

struct ResultRoute {
    std::string dst;
    std::string gw;
};

struct Result {
    std::string cni_version;
    std::vector<ResultInterface> interfaces;
    std::vector<ResultIp> ips;
    std::vector<ResultRoute> routes;
    nlohmann::json dns = nlohmann::json::object();

    // A host-side interface (no "sandbox") named `name`?
    bool has_host_interface(std::string_view name) const;
};

// Validates the shape (names the offending field, Error InvalidConfig).
// `version` is the netconf's cniVersion: in 0.x results an ips[].version
// must match the address; 1.x results have none (a stray one is tolerated
// and dropped on output).
Result parse_result(const nlohmann::json& prev, std::string_view version);

// The result to print: `prev` unchanged except cniVersion = `to_version`
// and ips[].version added (to 0.x) or removed (to 1.x).
nlohmann::json convert_result(const nlohmann::json& prev, std::string_view to_version);

// The pod's own addresses, for the source check: every ips entry whose
// `interface` is the pod interface `ifname` (an interfaces entry with a
// sandbox), plus every entry without `interface` (the result does not say
// where it lives; treating it as foreign would cut the pod's own traffic).
// Sorted, without duplicates.
std::vector<policy::SourceAddr> pod_sources(const Result& prev, std::string_view ifname);

// 4 or 6 from "addr/len" (or a bare address); 0 if neither.
int address_family(std::string_view cidr);

} // namespace podfence::cni
