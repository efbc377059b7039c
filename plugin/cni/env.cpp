#include "env.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "../common/error.hpp"
#include "../common/log.hpp"

namespace podfence::cni {
namespace {

struct VerbName {
    Verb verb;
    std::string_view name;
};
constexpr VerbName kVerbs[] = {{Verb::Add, "ADD"}, {Verb::Del, "DEL"},       {Verb::Check, "CHECK"},
                               {Verb::Gc, "GC"},   {Verb::Status, "STATUS"}, {Verb::Version, "VERSION"}};

// Which variables a verb needs (spec "Parameters" table).
struct Needs {
    bool container_id, netns, ifname, path;
};
Needs needs(Verb v) {
    switch (v) {
    case Verb::Add:
    case Verb::Check: return {true, true, true, true};
    case Verb::Del: return {true, false, true, true};
    case Verb::Gc:
    case Verb::Status: return {false, false, false, true};
    case Verb::Version: return {false, false, false, false};
    }
    return {};
}

std::string get(const EnvLookup& lookup, const char* name, bool required, Verb verb) {
    std::optional<std::string> v = lookup(name);
    if (required && (!v || v->empty()))
        throw Error(Code::InvalidEnv, std::string(name) + " is not set; the runtime must set it for " +
                                          std::string(verb_name(verb)));
    return v.value_or("");
}

// Spec: starts with an alphanumeric, then alphanumerics, '_', '.', '-'.
void validate_container_id(const std::string& id) {
    auto ok_first = [](unsigned char c) { return std::isalnum(c) != 0; };
    auto ok_rest = [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '.' || c == '-'; };
    bool ok = !id.empty() && ok_first(static_cast<unsigned char>(id[0]));
    for (char c : id)
        ok = ok && ok_rest(static_cast<unsigned char>(c));
    if (!ok)
        throw Error(Code::InvalidEnv, "CNI_CONTAINERID: \"" + id +
                                          "\" has invalid characters (allowed: letters, digits, "
                                          "'_', '.', '-', starting with a letter or digit)");
}

// Spec: at most 15 bytes, not "." or "..", no '/', ':' or whitespace.
void validate_ifname(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 15 && name != "." && name != "..";
    for (char c : name)
        ok = ok && c != '/' && c != ':' && !std::isspace(static_cast<unsigned char>(c));
    if (!ok)
        throw Error(Code::InvalidEnv, "CNI_IFNAME: \"" + name +
                                          "\" is not a valid interface name (1-15 bytes, not . or .., "
                                          "no '/', ':' or whitespace)");
}

std::vector<std::pair<std::string, std::string>> split_args(const std::string& args) {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t pos = 0;
    while (pos <= args.size() && !args.empty()) {
        std::size_t end = args.find(';', pos);
        if (end == std::string::npos) end = args.size();
        std::string item = args.substr(pos, end - pos);
        if (!item.empty()) {
            std::size_t eq = item.find('=');
            // podfence reads no CNI_ARGS itself (they are kept for logs), so a
            // malformed item is skipped rather than failing the pod.
            if (eq != std::string::npos && eq > 0) out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
        }
        pos = end + 1;
    }
    return out;
}

} // namespace

Verb parse_verb(std::string_view command) {
    for (const auto& v : kVerbs)
        if (v.name == command) return v.verb;
    throw Error(Code::InvalidEnv, "CNI_COMMAND: \"" + std::string(command) +
                                      "\" is not one of ADD, DEL, CHECK, GC, STATUS, VERSION");
}

std::string_view verb_name(Verb v) {
    for (const auto& n : kVerbs)
        if (n.verb == v) return n.name;
    return "?";
}

EnvLookup process_env() {
    return [](const char* name) -> std::optional<std::string> {
        const char* v = std::getenv(name);
        if (!v) return std::nullopt;
        return std::string(v);
    };
}

Env read_env(const EnvLookup& lookup) {
    Env env;
    std::optional<std::string> command = lookup("CNI_COMMAND");
    if (!command || command->empty()) throw Error(Code::InvalidEnv, "CNI_COMMAND is not set");
    env.verb = parse_verb(*command);
    Needs n = needs(env.verb);
    env.container_id = get(lookup, "CNI_CONTAINERID", n.container_id, env.verb);
    env.netns = get(lookup, "CNI_NETNS", n.netns, env.verb);
    env.ifname = get(lookup, "CNI_IFNAME", n.ifname, env.verb);
    env.path = get(lookup, "CNI_PATH", n.path, env.verb);
    env.args = get(lookup, "CNI_ARGS", false, env.verb);
    if (n.container_id) validate_container_id(env.container_id);
    if (n.ifname) validate_ifname(env.ifname);
    env.arg_pairs = split_args(env.args);
    env.pod = pod_identity(env.arg_pairs);
    return env;
}

std::string PodIdentity::qualified() const {
    return namespace_.empty() || name.empty() ? std::string() : namespace_ + "/" + name;
}

PodIdentity pod_identity(const std::vector<std::pair<std::string, std::string>>& arg_pairs) {
    PodIdentity id;
    const std::pair<const char*, std::string*> keys[] = {
        {"K8S_POD_NAMESPACE", &id.namespace_}, {"K8S_POD_NAME", &id.name}, {"K8S_POD_UID", &id.uid}};
    for (const auto& [key, value] : arg_pairs)
        for (const auto& [name, field] : keys) {
            if (key != name) continue;
            const bool usable = value.size() <= 253 && std::none_of(value.begin(), value.end(), [](char c) {
                                    return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                                });
            if (usable)
                *field = value;
            else
                log::warn(std::string("CNI_ARGS ") + name + " is not a Kubernetes name; ignored");
        }
    return id;
}

} // namespace podfence::cni
