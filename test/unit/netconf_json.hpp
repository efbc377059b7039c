// The smallest network configuration podfence accepts, as JSON, for the
// tests to add their keys to (cniVersion 1.1.0 unless told).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

inline nlohmann::json minimal_netconf(const std::string& version = "1.1.0") {
    return {{"cniVersion", version}, {"name", "net"}, {"type", "podfence"}};
}
