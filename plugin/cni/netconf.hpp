// The network configuration on stdin: the spec's keys plus podfence's own.
// parse_netconf only validates; it touches nothing on the system.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../policy/policy.hpp"

namespace podfence::cni {

inline constexpr std::string_view kAnnotationsCapability = "io.kubernetes.cri.pod-annotations";
inline constexpr std::string_view kPolicyAnnotation = "podfence.io/policy";
inline constexpr std::string_view kEnforcementAnnotation = "podfence.io/enforcement";
inline constexpr std::string_view kDefaultBpffsRoot = "/sys/fs/bpf";

enum class Mode { Tc, Xdp };
enum class XdpMode { Native, Generic };
enum class TcBackend { Auto, Tcx, Legacy };
enum class LogLevel { Debug, Info, Warn, Error };

std::string_view to_string(Mode m);
std::string_view to_string(XdpMode m);
std::string_view to_string(TcBackend b);

struct NetConf {
    std::string cni_version;
    std::string name;
    std::string type;
    nlohmann::json capabilities = nlohmann::json::object();
    nlohmann::json runtime_config = nlohmann::json::object();
    std::optional<nlohmann::json> prev_result; // raw, as received

    Mode mode = Mode::Tc;
    XdpMode xdp_mode = XdpMode::Native;
    TcBackend tc_backend = TcBackend::Auto;
    policy::DefaultAction default_policy = policy::DefaultAction::Allow;
    // Node default; the podfence.io/enforcement annotation overrides it per pod.
    policy::Enforcement enforcement = policy::Enforcement::Enforce;
    std::string bpffs_root{kDefaultBpffsRoot};
    std::string log_file; // empty = stderr
    LogLevel log_level = LogLevel::Info;
    // Drop what the pod sends from addresses not its own (PF_POD_SRC_CHECK).
    // Off for pods that route other addresses (VPN gateway, own NAT).
    bool source_check = true;
    // How long a verb waits for the node lock before failing with code 11;
    // below the runtime's own timeout (kubelet's CRI requests: 2 min).
    unsigned lock_timeout_seconds = 60;

    // runtimeConfig["io.kubernetes.cri.pod-annotations"]; nullopt if the
    // runtime passed none.
    std::optional<std::map<std::string, std::string>> annotations;

    nlohmann::json raw; // the whole document (GC reads its attachment list from it)

    // The podfence.io/policy annotation, nullopt if absent (=> defaultPolicy).
    std::optional<std::string> policy_annotation() const;
    // The podfence.io/enforcement annotation, unparsed; nullopt if absent.
    std::optional<std::string> enforcement_annotation() const;
};

// Throws Error: Decode (6) for non-JSON, IncompatibleVersion (1) for a
// missing/unsupported cniVersion, InvalidConfig (7) naming key and value for
// a known key of the wrong type or value, UnsupportedField (2) for a
// capability podfence cannot honour. Unknown keys are ignored: the conflist
// shares the document with other plugins' keys.
NetConf parse_netconf(std::string_view json_text);

// Best effort for error replies: the document's cniVersion if it is a
// string, else "" (the caller falls back to kSpecVersion).
std::string sniff_cni_version(std::string_view json_text);

struct AttachmentId {
    std::string container_id;
    std::string ifname;
    bool operator==(const AttachmentId&) const = default;
    auto operator<=>(const AttachmentId&) const = default;
};

// GC input: "cni.dev/valid-attachments" (or "cni.dev/attachments" when the
// former is absent). nullopt when neither is present: libcni's
// GCNetworkList(list, nil) sends no list, meaning "nothing of this network is
// valid". Throws Error(InvalidConfig) if the shape is wrong: collecting on a
// malformed request would tear down the network's pods.
std::optional<std::vector<AttachmentId>> parse_valid_attachments(const NetConf& conf);

} // namespace podfence::cni
