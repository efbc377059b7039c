// What podfence prints on stdout for the runtime: exactly one JSON document.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "../common/error.hpp"

namespace podfence::cni {

// {"cniVersion", "code", "msg", "details"}; `version` empty => kSpecVersion.
nlohmann::json error_json(std::string_view version, const Error& err);
// {"cniVersion": "1.1.0", "supportedVersions": [...]}
nlohmann::json version_json();

} // namespace podfence::cni
