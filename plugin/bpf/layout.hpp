// Every path and pin name podfence uses in bpffs, in one place:
//   <root>/podfence/                          node lock (flock on the dir)
//       datapath-abi<N>-<hash>/               the engine: prog_tc, prog_xdp, map pins
//       tmp-<datapath name>-<pid>/            a datapath being built (renamed when complete)
//       attachments/<containerID>_<ifname>/   record, link_*, stub_* (state.hpp)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "maps.hpp"

namespace podfence::bpf::layout {

// Pin names inside an attachment directory.
inline constexpr const char* kLinkEgress = "link_egress";   // carries PF_DIR_EGRESS (from the pod)
inline constexpr const char* kLinkIngress = "link_ingress"; // carries PF_DIR_INGRESS (to the pod)
inline constexpr const char* kStubEgress = "stub_egress";
inline constexpr const char* kStubIngress = "stub_ingress";
bool is_link_pin(std::string_view name); // link_*: bpf_links, detached before unpinning

std::string pin_path(const std::string& dir, std::string_view name); // dir/name

// <root>/podfence; its fd is also the node lock.
std::string podfence_dir(const std::string& bpffs_root);

// ---- datapaths ----
// "datapath-abi<N>-<16 hex digits of the object hash>"
std::string datapath_name(unsigned abi, std::uint64_t object_hash);
bool is_datapath_name(std::string_view name); // any datapath-*, older formats too
// The policy-map ABI of a datapath directory, from its name
// ("datapath-abi<N>-..."); 0 for a name without one (podfence before ABI 3).
unsigned datapath_abi(const std::string& dir);
std::string datapath_dir(const std::string& bpffs_root, const std::string& name);
// Where a datapath is built before its rename to datapath_dir().
std::string tmp_datapath_dir(const std::string& bpffs_root, const std::string& name, long pid);
bool is_tmp_datapath_name(std::string_view name);
std::string map_pin(const std::string& datapath_dir, Map m); // pin name = map name
std::string tc_prog_pin(const std::string& datapath_dir);
std::string xdp_prog_pin(const std::string& datapath_dir);

// ---- attachments ----
std::string attachments_dir(const std::string& bpffs_root);
// Directory for (container_id, ifname): a filesystem-safe, deterministic name.
std::string attachment_dir(const std::string& bpffs_root, const std::string& container_id,
                           const std::string& ifname);
std::string record_pin(const std::string& attachment_dir);
std::string record_tmp_pin(const std::string& attachment_dir); // the next record, renamed over record_pin()

// ---- record copies outside bpffs ----
// /run/podfence/<root, '/' as '_'>/: a JSON copy of every record, so that a
// lost bpffs (unmounted, pins deleted) can be repaired (`podfence repair`).
// /run is a tmpfs: the copies live exactly as long as the kernel state.
std::string mirror_dir(const std::string& bpffs_root);
// <mirror_dir>/bpffs: a second bpffs instance holding a second pin of each
// datapath's engine arrays (pf_tc_engine, pf_xdp_engine). The kernel empties
// a program array once no pin or fd holds it, and every stub tail-calls
// through one: with only the main pins, a lost bpffs would drop all traffic.
std::string backup_bpffs(const std::string& bpffs_root);
// <backup_bpffs>/<datapath name>_<map name>
std::string backup_pin(const std::string& bpffs_root, const std::string& datapath_name, Map m);
// <mirror_dir>/<attachment dir name>.json
std::string record_mirror(const std::string& bpffs_root, const std::string& attachment_dir);

} // namespace podfence::bpf::layout
