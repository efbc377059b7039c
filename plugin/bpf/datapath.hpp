// The node-wide datapath: the engine programs and shared maps, loaded once
// from the embedded skeleton and pinned under
// <bpffsRoot>/podfence/datapath-abi<N>-<hash of the BPF object>/ so every
// later verb (a new process each time) reuses them without a verifier run.
// N is the policy-map ABI (bpf/podfence_abi.h) the programs read: after an
// upgrade, pods attached by the older binary stay on its datapath, and only
// a binary of the same ABI may write their policy.
#pragma once

#include <array>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "../common/fd.hpp"
#include "layout.hpp"
#include "maps.hpp"

namespace podfence::bpf {

// Makes sure <root> is a bpffs (mounts one if nothing is mounted there) and
// <root>/podfence exists. Throws Error(Code::Io) with what failed.
void ensure_bpffs(const std::string& bpffs_root);
bool is_bpffs(const std::string& path);
// bpffs mounted at root and <root>/podfence present: there may be podfence
// state to find. For what must not create anything (DEL, CHECK, GC, the CLI).
bool has_state(const std::string& bpffs_root);

// Exclusive node-wide lock (flock on <root>/podfence) held for a whole verb:
// runtimes run ADD/DEL of different pods concurrently. Waits at most
// `timeout`, then throws Error(Code::TryAgain) naming the holder's pid: a hung
// holder must not make every verb outlive the runtime's own timeout.
class NodeLock {
public:
    static constexpr std::chrono::milliseconds kDefaultTimeout{60'000};
    explicit NodeLock(const std::string& bpffs_root, std::chrono::milliseconds timeout = kDefaultTimeout);

private:
    UniqueFd fd_;
};

using layout::datapath_abi;

class Datapath {
public:
    // Opens the pinned datapath of this binary's BPF object, loading and
    // pinning it first if absent. Call with the NodeLock held.
    // Throws Error(Code::BpfLoad) naming the libbpf call and object.
    // A new load takes over the conntrack and fragment state (kSharedMaps) of
    // another datapath on the node, or of the maps in `share` (which come
    // first; `podfence repair` finds them through the kernel), so an upgrade
    // keeps established flows.
    static Datapath open_or_load(const std::string& bpffs_root,
                                 std::vector<std::pair<Map, UniqueFd>> share = {});
    // Opens whatever is pinned in `dir` (an existing datapath-* directory,
    // maybe of an older binary): used by DEL/GC/CHECK/CLI.
    static Datapath open_dir(const std::string& dir);

    const std::string& dir() const { return dir_; } // absolute pin directory
    unsigned abi() const { return datapath_abi(dir_); }
    int tc_prog() const { return tc_prog_.get(); } // engine, tail-call target
    int xdp_prog() const { return xdp_prog_.get(); }
    // The map's fd; -1 when an older datapath lacks it (MapInfo::since_abi).
    int map(Map m) const { return maps_[static_cast<std::size_t>(m)].get(); }
    int policy_map() const { return map(Map::Policy); } // ARRAY_OF_MAPS slot -> the pod's policy hash
    int pods_map() const { return map(Map::Pods); }
    int scratch_map() const { return map(Map::Scratch); }
    int tc_engine_map() const { return map(Map::TcEngine); }
    int xdp_engine_map() const { return map(Map::XdpEngine); }
    int conntrack_map() const { return map(Map::Conntrack); }   // IPv6 flows (and IPv4 before ABI 6)
    int conntrack4_map() const { return map(Map::Conntrack4); } // -1: a datapath before ABI 6
    int counters_map() const { return map(Map::Counters); }
    int rule_hits_map() const { return map(Map::RuleHits); }
    int config_map() const { return map(Map::Config); }
    int events_map() const { return map(Map::Events); }
    int sources_map() const { return map(Map::Sources); } // -1: a datapath before ABI 4 (no source check)
    int frags_map() const { return map(Map::Frags); }     // -1: a datapath before ABI 4 (no fragment state)

private:
    std::string dir_;
    UniqueFd tc_prog_, xdp_prog_;
    std::array<UniqueFd, kMaps.size()> maps_;
};

// The shareable maps (kSharedMaps) of the datapath a live stub tail-calls
// into, found through the kernel: the stub's maps, its engine array's
// program, that program's maps. After a lost bpffs nothing else leads there.
std::vector<std::pair<Map, UniqueFd>> maps_behind_stub(int stub_fd);

// Pins the engine arrays of the datapath in `dir` a second time, in the
// backup bpffs (layout::backup_bpffs, mounted if needed), unless they are
// there. Failures are logged: the pod is enforced without them.
void backup_engine_pins(const std::string& bpffs_root, const Datapath& dp);
// Removes the backup pins of datapaths not named in `keep`.
void remove_backup_pins(const std::string& bpffs_root, const std::vector<std::string>& keep);

// Name of the datapath directory for the BPF object embedded in this binary.
std::string embedded_datapath_name();

// For a pod about to move onto `to` from the datapath in `from_dir` (`from`
// when its pins are there): if that one is before ABI 6, its IPv4 flows are
// in the shared wide conntrack, and `to`'s engine adopts them from there
// (bpf/conntrack.h) for one TCP idle timeout from now, after which every
// such flow has expired; if it is an ABI 6 one still adopting, `to` adopts
// until the same time. No-op for a `to` before ABI 6.
// Throws Error(Code::MapSeed).
void adopt_wide_ipv4_flows(const Datapath& to, const Datapath* from, const std::string& from_dir);

// Removes the tmp-* datapath builds a verb killed mid-load left (maps and
// programs pinned, never used); returns their names. Call with the NodeLock
// held, so none is being built. Throws Error(Code::Io).
std::vector<std::string> remove_unfinished_builds(const std::string& bpffs_root);

} // namespace podfence::bpf
