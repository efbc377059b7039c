// CNI spec versions podfence speaks, and how to compare them.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace podfence::cni {

inline constexpr std::string_view kSpecVersion = "1.1.0"; // what VERSION reports as its own
inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0",
                                                                       "1.1.0"};

bool is_supported_version(std::string_view v);

// Semantic version compare on "MAJOR.MINOR.PATCH" (missing parts are 0).
// Returns <0, 0, >0. Unparseable parts compare as 0.
int compare_versions(std::string_view a, std::string_view b);

// Results before 1.0.0 carry ips[].version; 1.x results do not.
bool result_has_ip_version(std::string_view v);

// "0.3.0, 0.3.1, ..." for messages.
std::string supported_versions_list();

} // namespace podfence::cni
