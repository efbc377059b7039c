// The CNI verbs. Each parses and validates everything (netconf, prevResult,
// policy) before it touches the system, and returns the JSON to print on
// stdout (nullopt: print nothing). Failures throw podfence::Error.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "../bpf/state.hpp"
#include "../cni/env.hpp"
#include "../cni/netconf.hpp"

namespace podfence::verbs {

using Output = std::optional<nlohmann::json>;

Output add(const cni::Env& env, const cni::NetConf& conf);
Output del(const cni::Env& env, const cni::NetConf& conf);
Output check(const cni::Env& env, const cni::NetConf& conf);
Output gc(const cni::Env& env, const cni::NetConf& conf);
Output status(const cni::Env& env, const cni::NetConf& conf);

// ---- shared by the verbs and the CLI ----

// The hook the netconf asks for: for mode tc, tcBackend auto resolves to tcx
// when the kernel has it; for mode xdp, the wanted xdpMode (the backend
// records the one that took). Throws Error(UnsupportedField) for tcBackend
// "tcx" on a kernel without tcx.
bpf::AttachMode attach_mode_for(const cni::NetConf& conf);

} // namespace podfence::verbs
