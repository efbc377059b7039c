// Moving pods between datapaths. A podfence binary whose datapath differs
// (another BPF object, maybe another ABI) moves every attachment of the node
// onto its own datapath the first time it runs a verb there, or when the
// operator runs `podfence upgrade`: policies are recompiled from the stored
// policy JSON into the new layout, the stubs are swapped in place on each
// hook, and conntrack is shared (kSharedMaps), so established flows keep
// passing and no packet is ever unfiltered. A datapath nothing uses any
// more is removed. A pod on a NEWER ABI than this binary's is not moved:
// downgrades are refused.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "../bpf/datapath.hpp"
#include "../bpf/state.hpp"
#include "../common/error.hpp"

namespace podfence::verbs {

struct UpgradeReport {
    std::vector<std::string> moved;   // "<container>/<ifname>"
    std::vector<std::string> refused; // downgrades, one message each
    Problems errors;                  // moves that failed (the pod stays on its datapath)
};

// Names of the datapath directories under the bpffs root (datapath-*).
std::vector<std::string> datapath_names(const std::string& bpffs_root);

// The node has a datapath directory other than this binary's.
bool other_datapaths(const std::string& bpffs_root);

// Moves every attachment onto this binary's datapath (loading it if needed),
// then removes datapaths nothing uses. Call with the NodeLock held.
UpgradeReport upgrade_all(bpf::StateStore& store, const std::string& bpffs_root);

// For the verbs, with the NodeLock held: upgrade_all() when other_datapaths().
// Never throws: a pod that could not move stays enforced by its old
// datapath, and the failure is logged (`podfence upgrade` reports it).
void upgrade_if_needed(const std::string& bpffs_root);

// Moves one attachment onto dp; resumes a move a killed verb left half done
// (rec.previous_datapath_dir). Throws; the pod keeps a podfence stub on
// every hook whatever step fails.
// repair: the pod's pins were lost; re-seed and re-pin even if its record
// names dp already.
void move_attachment(bpf::StateStore& store, bpf::AttachmentRecord& rec, const bpf::Datapath& dp,
                     bool repair = false);

struct RepairReport {
    std::vector<std::string> repaired; // "<container>/<ifname>"
    Problems errors;
};
// Restores the pods whose pins are gone (a lost bpffs, deleted pins) from
// their record copies (StateStore::list_lost): pins the record again, loads
// this binary's datapath if needed (taking over the conntrack of the one the
// live stubs still run, found through the kernel) and moves each pod onto
// it; its stubs are swapped in place, a hook without one gets it. Call with
// the NodeLock held.
RepairReport repair_all(bpf::StateStore& store, const std::string& bpffs_root);
// For ADD on a bpffs that was mounted anew: repair_all, failures logged.
void repair_if_needed(bpf::StateStore& store, const std::string& bpffs_root);

// Slots in use on the node's datapaths other than `except_dir`: a new pod
// must not take one (they share conntrack until those pods move).
std::set<std::uint32_t> slots_elsewhere(const std::string& bpffs_root, const std::string& except_dir);

// Removes the datapath directories that no record uses (this binary's is
// kept). Call with the NodeLock held.
void remove_unused_datapaths(const std::string& bpffs_root, const std::vector<bpf::AttachmentRecord>& records,
                             Problems& errors);

} // namespace podfence::verbs
