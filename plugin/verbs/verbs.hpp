// The CNI verbs. Each parses and validates everything (netconf, prevResult,
// policy) before it touches the system, and returns the JSON to print on
// stdout (nullopt: print nothing). Failures throw podfence::Error.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

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

// "tcx" or "legacy" for mode tc (auto: tcx when the kernel has it). Throws
// Error(UnsupportedField) for tcBackend "tcx" on a kernel without tcx.
std::string resolve_tc_backend(cni::TcBackend configured);

} // namespace podfence::verbs
