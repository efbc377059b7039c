#include "version.hpp"

#include <algorithm>
#include <charconv>

namespace podfence::cni {
namespace {

std::array<unsigned, 3> parts(std::string_view v) {
    std::array<unsigned, 3> out{};
    for (unsigned& p : out) {
        auto dot = v.find('.');
        std::string_view head = v.substr(0, dot);
        std::from_chars(head.data(), head.data() + head.size(), p);
        if (dot == std::string_view::npos) break;
        v.remove_prefix(dot + 1);
    }
    return out;
}

} // namespace

bool is_supported_version(std::string_view v) {
    return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), v) != kSupportedVersions.end();
}

int compare_versions(std::string_view a, std::string_view b) {
    auto pa = parts(a), pb = parts(b);
    if (pa < pb) return -1;
    if (pb < pa) return 1;
    return 0;
}

bool result_has_ip_version(std::string_view v) {
    return compare_versions(v, "1.0.0") < 0;
}

std::string supported_versions_list() {
    std::string out;
    for (auto v : kSupportedVersions) {
        if (!out.empty()) out += ", ";
        out += v;
    }
    return out;
}

} // namespace podfence::cni
