#include "output.hpp"

#include "version.hpp"

namespace podfence::cni {

nlohmann::json error_json(std::string_view version, const Error& err) {
    return {
        {"cniVersion", std::string(version.empty() ? kSpecVersion : version)},
        {"code", static_cast<unsigned>(err.code())},
        {"msg", err.what()},
        {"details", err.details()},
    };
}

nlohmann::json version_json() {
    nlohmann::json versions = nlohmann::json::array();
    for (auto v : kSupportedVersions)
        versions.push_back(std::string(v));
    return {{"cniVersion", std::string(kSpecVersion)}, {"supportedVersions", versions}};
}

} // namespace podfence::cni
