#include "netconf.hpp"

#include <utility>

#include "../common/error.hpp"
#include "version.hpp"

namespace podfence::cni {
namespace {

using nlohmann::json;

template <typename E> struct Choice {
    std::string_view name;
    E value;
};

template <typename E, std::size_t N> std::string_view name_of(const Choice<E> (&choices)[N], E value) {
    for (const auto& c : choices)
        if (c.value == value) return c.name;
    return "?";
}

constexpr Choice<Mode> kModes[] = {{"tc", Mode::Tc}, {"xdp", Mode::Xdp}};
constexpr Choice<XdpMode> kXdpModes[] = {{"native", XdpMode::Native}, {"generic", XdpMode::Generic}};
constexpr Choice<TcBackend> kTcBackends[] = {
    {"auto", TcBackend::Auto}, {"tcx", TcBackend::Tcx}, {"legacy", TcBackend::Legacy}};
constexpr Choice<policy::DefaultAction> kDefaults[] = {{"allow", policy::DefaultAction::Allow},
                                                       {"deny", policy::DefaultAction::Deny}};
constexpr Choice<policy::Enforcement> kEnforcements[] = {{"enforce", policy::Enforcement::Enforce},
                                                         {"audit", policy::Enforcement::Audit}};
constexpr Choice<LogLevel> kLogLevels[] = {{"debug", LogLevel::Debug},
                                           {"info", LogLevel::Info},
                                           {"warn", LogLevel::Warn},
                                           {"error", LogLevel::Error}};

[[noreturn]] void bad(const std::string& key, const std::string& why) {
    throw Error(Code::InvalidConfig, key + ": " + why);
}

std::string type_name(const json& v) {
    return v.type_name();
}

// Optional string key; absent or null keeps the default.
std::optional<std::string> opt_string(const json& doc, const char* key) {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) bad(key, "must be a string, got " + type_name(*it) + " " + it->dump());
    return it->get<std::string>();
}

// Optional boolean key; absent or null keeps the default.
void opt_bool(const json& doc, const char* key, bool& out) {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return;
    if (!it->is_boolean()) bad(key, "must be true or false, got " + type_name(*it) + " " + it->dump());
    out = it->get<bool>();
}

// Optional whole number in [lo, hi]; absent or null keeps the default.
void opt_uint(const json& doc, const char* key, unsigned lo, unsigned hi, unsigned& out) {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return;
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() < lo || it->get<std::uint64_t>() > hi)
        bad(key, "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                     ", got " + it->dump());
    out = it->get<unsigned>();
}

template <typename E, std::size_t N>
void opt_choice(const json& doc, const char* key, const Choice<E> (&choices)[N], E& out) {
    std::optional<std::string> v = opt_string(doc, key);
    if (!v) return;
    for (const auto& c : choices) {
        if (c.name == *v) {
            out = c.value;
            return;
        }
    }
    std::string list;
    for (const auto& c : choices)
        list += (list.empty() ? "" : ", ") + std::string(c.name);
    bad(key, json(*v).dump() + " is not one of " + list);
}

json opt_object(const json& doc, const char* key) {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return json::object();
    if (!it->is_object()) bad(key, "must be an object, got " + type_name(*it));
    return *it;
}

void parse_version(const json& doc, NetConf& c) {
    auto it = doc.find("cniVersion");
    if (it == doc.end() || !it->is_string())
        throw Error(Code::IncompatibleVersion,
                    "cniVersion: missing or not a string; podfence supports " + supported_versions_list());
    c.cni_version = it->get<std::string>();
    if (!is_supported_version(c.cni_version))
        throw Error(Code::IncompatibleVersion, "cniVersion: \"" + c.cni_version +
                                                   "\" is not supported; podfence supports " +
                                                   supported_versions_list());
}

// podfence declares exactly one capability; declaring another on its entry
// means the runtime would hand podfence data it silently ignores.
void check_capabilities(const json& caps) {
    for (const auto& [key, value] : caps.items()) {
        if (!value.is_boolean()) bad("capabilities." + key, "must be a boolean, got " + type_name(value));
        if (value.get<bool>() && key != kAnnotationsCapability)
            throw Error(Code::UnsupportedField, "capabilities: \"" + key +
                                                    "\": true is not supported by podfence (it only uses " +
                                                    std::string(kAnnotationsCapability) + ")");
    }
}

std::optional<std::map<std::string, std::string>> parse_annotations(const json& runtime_config) {
    auto it = runtime_config.find(kAnnotationsCapability);
    if (it == runtime_config.end() || it->is_null()) return std::nullopt;
    std::string key = "runtimeConfig[\"" + std::string(kAnnotationsCapability) + "\"]";
    if (!it->is_object()) bad(key, "must be an object of strings, got " + type_name(*it));
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : it->items()) {
        if (!value.is_string())
            bad(key + "[\"" + name + "\"]", "must be a string, got " + type_name(value) + " " + value.dump());
        out.emplace(name, value.get<std::string>());
    }
    return out;
}

void parse_podfence_keys(const json& doc, NetConf& c) {
    opt_choice(doc, "mode", kModes, c.mode);
    opt_choice(doc, "xdpMode", kXdpModes, c.xdp_mode);
    opt_choice(doc, "tcBackend", kTcBackends, c.tc_backend);
    opt_choice(doc, "defaultPolicy", kDefaults, c.default_policy);
    opt_choice(doc, "enforcement", kEnforcements, c.enforcement);
    opt_choice(doc, "logLevel", kLogLevels, c.log_level);
    opt_bool(doc, "sourceCheck", c.source_check);
    opt_uint(doc, "lockTimeoutSeconds", 1, 3600, c.lock_timeout_seconds);
    if (auto root = opt_string(doc, "bpffsRoot")) {
        if (root->empty() || (*root)[0] != '/')
            bad("bpffsRoot", json(*root).dump() + " must be an absolute path");
        c.bpffs_root = *root;
    }
    if (auto file = opt_string(doc, "logFile")) {
        if (!file->empty() && (*file)[0] != '/')
            bad("logFile", json(*file).dump() + " must be an absolute path (or empty for stderr)");
        c.log_file = *file;
    }
}

} // namespace

std::string_view to_string(Mode m) {
    return name_of(kModes, m);
}
std::string_view to_string(XdpMode m) {
    return name_of(kXdpModes, m);
}
std::string_view to_string(TcBackend b) {
    return name_of(kTcBackends, b);
}

std::optional<std::string> NetConf::policy_annotation() const {
    if (!annotations) return std::nullopt;
    auto it = annotations->find(std::string(kPolicyAnnotation));
    if (it == annotations->end()) return std::nullopt;
    return it->second;
}

std::optional<std::string> NetConf::enforcement_annotation() const {
    if (!annotations) return std::nullopt;
    auto it = annotations->find(std::string(kEnforcementAnnotation));
    if (it == annotations->end()) return std::nullopt;
    return it->second;
}

NetConf parse_netconf(std::string_view text) {
    json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) throw Error(Code::Decode, "network configuration on stdin is not valid JSON");
    if (!doc.is_object())
        throw Error(Code::Decode,
                    "network configuration on stdin must be a JSON object, got " + type_name(doc));
    NetConf c;
    parse_version(doc, c);
    c.name = opt_string(doc, "name").value_or("");
    c.type = opt_string(doc, "type").value_or("");
    c.capabilities = opt_object(doc, "capabilities");
    check_capabilities(c.capabilities);
    c.runtime_config = opt_object(doc, "runtimeConfig");
    if (auto it = doc.find("prevResult"); it != doc.end() && !it->is_null()) {
        if (!it->is_object()) bad("prevResult", "must be an object, got " + type_name(*it));
        c.prev_result = *it;
    }
    parse_podfence_keys(doc, c);
    c.annotations = parse_annotations(c.runtime_config);
    c.raw = std::move(doc);
    return c;
}

std::string sniff_cni_version(std::string_view text) {
    json doc = json::parse(text, nullptr, false);
    if (doc.is_object()) {
        auto it = doc.find("cniVersion");
        if (it != doc.end() && it->is_string()) return it->get<std::string>();
    }
    return "";
}

std::optional<std::vector<AttachmentId>> parse_valid_attachments(const NetConf& conf) {
    const char* key = "cni.dev/valid-attachments";
    auto it = conf.raw.find(key);
    if (it == conf.raw.end()) {
        key = "cni.dev/attachments";
        it = conf.raw.find(key);
    }
    if (it == conf.raw.end()) return std::nullopt;
    if (!it->is_array()) bad(key, "must be an array, got " + type_name(*it));
    std::vector<AttachmentId> out;
    for (std::size_t i = 0; i < it->size(); ++i) {
        const json& a = (*it)[i];
        std::string at = std::string(key) + "[" + std::to_string(i) + "]";
        if (!a.is_object()) bad(at, "must be an object, got " + type_name(a));
        auto cid = a.find("containerID");
        auto ifn = a.find("ifname");
        if (cid == a.end() || !cid->is_string()) bad(at + ".containerID", "missing or not a string");
        if (ifn == a.end() || !ifn->is_string()) bad(at + ".ifname", "missing or not a string");
        out.push_back({cid->get<std::string>(), ifn->get<std::string>()});
    }
    return out;
}

} // namespace podfence::cni
