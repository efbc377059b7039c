#include "output.hpp"

#include "version.hpp"

namespace podfence::cni {
namespace {

// Invalid UTF-8 sequences replaced by U+FFFD. Messages quote input (an
// environment value, a JSON parser's "last read" bytes cut mid-character),
// and dump() throws on invalid UTF-8: main() would die inside its own error
// handler and print nothing.
std::string valid_utf8(const std::string& s) {
    using nlohmann::json;
    return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

} // namespace

nlohmann::json error_json(std::string_view version, const Error& err) {
    return {
        {"cniVersion", std::string(version.empty() ? kSpecVersion : version)},
        {"code", static_cast<unsigned>(err.code())},
        {"msg", valid_utf8(err.what())},
        {"details", valid_utf8(err.details())},
    };
}

nlohmann::json version_json() {
    nlohmann::json versions = nlohmann::json::array();
    for (auto v : kSupportedVersions)
        versions.push_back(std::string(v));
    return {{"cniVersion", std::string(kSpecVersion)}, {"supportedVersions", versions}};
}

} // namespace podfence::cni
