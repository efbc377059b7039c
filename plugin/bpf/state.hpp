// Attachment state lives in bpffs, one directory per attachment:
//   <root>/podfence/attachments/<dir>/
//       record        array map, 1 entry: the AttachmentRecord as JSON
//       link_*        pinned bpf_links (unpinning the last one detaches)
//       stub_*        pinned stub programs (CHECK compares link prog ids)
// Everything a DEL/GC/CHECK needs is found from (containerID, ifname).
// Names and paths: layout.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace podfence::bpf {

// How an attachment is hooked (tcBackend auto resolved; for XDP, the mode
// that took). Unknown: a record this binary cannot read the hook of (a newer
// binary's), which DEL can still unpin.
enum class AttachMode { Tcx, TcLegacy, XdpNative, XdpGeneric, Unknown };
// "tc/tcx", "tc/legacy", "xdp/native", "xdp/generic", "unknown".
std::string_view to_string(AttachMode m);
inline bool is_xdp(AttachMode m) {
    return m == AttachMode::XdpNative || m == AttachMode::XdpGeneric;
}

struct AttachmentRecord {
    std::string container_id;
    std::string ifname;  // CNI_IFNAME, inside the pod
    std::string network; // the netconf's name: GC is per network ("" in records before it)
    std::string netns;   // CNI_NETNS at ADD
    AttachMode mode = AttachMode::Unknown;
    std::string datapath_dir; // the datapath-* dir whose maps hold this slot
    std::string host_ifname;
    std::uint32_t host_ifindex = 0;
    std::uint32_t pod_ifindex = 0;
    std::uint32_t slot = 0;
    std::uint32_t rev = 0;
    bool legacy_qdisc_created = false; // podfence created the clsact (legacy tc only)
    std::string policy_json;           // canonical policy (policy::to_json)
    bool source_check = false;         // PF_POD_SRC_CHECK set (netconf sourceCheck)
    std::vector<std::string> sources;  // the pod's pf_sources addresses (empty when the check is off)
    // A move to datapath_dir under way (upgrade): the slot the pod held in
    // this datapath is cleared once its stubs run on the new one. "" when none.
    std::string previous_datapath_dir;
    std::uint32_t previous_slot = 0;
    // The Kubernetes pod, from CNI_ARGS K8S_POD_NAMESPACE/NAME/UID ("" outside Kubernetes).
    std::string pod_namespace;
    std::string pod_name;
    std::string pod_uid;
    // "enforce" or "audit" (PF_POD_AUDIT). Records before audit mode: enforce.
    std::string enforcement = "enforce";
};

// The record's one JSON form: pinned by StateStore, printed by `inspect --json`.
nlohmann::json to_json(const AttachmentRecord& r);
// Reads what to_json wrote, and the forms of earlier podfence versions.
// Throws nlohmann::json::exception when a required key is missing or mistyped.
AttachmentRecord record_from_json(const nlohmann::json& j);

class StateStore {
public:
    explicit StateStore(std::string bpffs_root); // <root>/podfence/attachments is created on demand
    const std::string& root() const { return root_; }

    // Absolute directory for (container_id, ifname) (layout::attachment_dir).
    std::string dir_for(const std::string& container_id, const std::string& ifname) const;

    // Creates the directory and pins the record; returns the directory. Throws Error(Code::Io).
    std::string create(const AttachmentRecord& rec);
    void update(const AttachmentRecord& rec); // rewrite the record
    std::optional<AttachmentRecord> find(const std::string& container_id, const std::string& ifname) const;
    std::vector<AttachmentRecord> list() const; // skips (and logs) unreadable dirs
    std::size_t count() const;                  // attachment directories, readable or not (one readdir)
    // Unpins everything in the directory and removes it, and the record's
    // copy (layout::record_mirror). No error if absent.
    void remove(const std::string& container_id, const std::string& ifname);

    // Records whose copy outside bpffs survives but whose pinned record is
    // gone (a lost bpffs, deleted pins): `podfence repair` restores them.
    std::optional<AttachmentRecord> find_lost(const std::string& container_id,
                                              const std::string& ifname) const;
    std::vector<AttachmentRecord> list_lost() const;
    // Any record copy at all (one readdir): after the bpffs was mounted anew,
    // there is something to repair.
    bool has_copies() const;

    // A directory without a record is what a verb killed between ADD's mkdir
    // and its record pin (or during DEL's unpinning) leaves: nothing in it is
    // enforced (links are pinned only after the record, and DEL detaches
    // them before unpinning). Call with the NodeLock held, so no ADD is
    // half way. Removes that directory of (container_id, ifname); true if
    // there was one.
    bool remove_orphan(const std::string& container_id, const std::string& ifname);
    // Removes every such directory, and record copies left half written
    // (<copy>.tmp) in the mirror dir; returns their names.
    std::vector<std::string> remove_orphans();

private:
    std::string root_;
};

} // namespace podfence::bpf
