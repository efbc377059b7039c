// Names of what ADD pins into an attachment's directory (state.hpp), shared
// by ADD, DEL, CHECK, GC and the CLI.
#pragma once

#include <string>

#include "../bpf/state.hpp"

namespace podfence::verbs {

inline constexpr const char* kLinkEgress = "link_egress";   // carries PF_DIR_EGRESS (from the pod)
inline constexpr const char* kLinkIngress = "link_ingress"; // carries PF_DIR_INGRESS (to the pod)
inline constexpr const char* kStubEgress = "stub_egress";
inline constexpr const char* kStubIngress = "stub_ingress";

// <root>/podfence
std::string podfence_dir(const std::string& bpffs_root);

// Absolute attachment directory for (containerID, ifname).
std::string attachment_dir(const bpf::StateStore& store, const std::string& bpffs_root,
                           const std::string& container_id, const std::string& ifname);

} // namespace podfence::verbs
