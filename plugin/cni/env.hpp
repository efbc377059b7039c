// The CNI_* environment of one invocation, validated per verb as the spec
// requires. Parsing takes a lookup function so tests need no real environment.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podfence::cni {

enum class Verb { Add, Del, Check, Gc, Status, Version };

// Throws Error(InvalidEnv) for anything else, naming the value.
Verb parse_verb(std::string_view command);
std::string_view verb_name(Verb v);

// The Kubernetes pod an invocation is for, as containerd and CRI-O pass it
// in CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID). Empty fields
// outside Kubernetes.
struct PodIdentity {
    std::string namespace_;
    std::string name;
    std::string uid;
    // "namespace/name", or "" when either is unknown.
    std::string qualified() const;
};

struct Env {
    Verb verb = Verb::Version;
    std::string container_id;
    std::string netns; // may be empty for DEL
    std::string ifname;
    std::string args;                                           // raw CNI_ARGS
    std::vector<std::pair<std::string, std::string>> arg_pairs; // CNI_ARGS split at ';' and '='
    std::string path;                                           // CNI_PATH
    PodIdentity pod;                                            // from arg_pairs
};

// The K8S_POD_* pairs of CNI_ARGS. A value that cannot be a Kubernetes name
// (control characters, '/', over 253 bytes) is dropped with a warning: the
// identity is a label, never a reason to fail a pod's ADD.
PodIdentity pod_identity(const std::vector<std::pair<std::string, std::string>>& arg_pairs);

// nullopt = variable unset. An empty value counts as unset for required
// variables (a runtime that sets CNI_IFNAME="" gave no interface).
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
EnvLookup process_env();

// Reads and validates the variables the verb needs (ADD/CHECK: CNI_CONTAINERID,
// CNI_NETNS, CNI_IFNAME, CNI_PATH; DEL: the same but CNI_NETNS may be empty;
// GC/STATUS: CNI_PATH; VERSION: none). Throws Error(InvalidEnv) naming the variable.
Env read_env(const EnvLookup& lookup);

} // namespace podfence::cni
