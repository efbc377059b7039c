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
#include <vector>

namespace podfence::bpf {

struct AttachmentRecord {
    std::string container_id;
    std::string ifname;       // CNI_IFNAME, inside the pod
    std::string network;      // the netconf's name: GC is per network ("" in records before it)
    std::string netns;        // CNI_NETNS at ADD
    std::string mode;         // "tc" | "xdp"
    std::string tc_backend;   // "tcx" | "legacy" (mode tc)
    std::string xdp_mode;     // "native" | "generic" (mode xdp, the mode that took)
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
};

class StateStore {
public:
    explicit StateStore(std::string bpffs_root); // <root>/podfence/attachments is created on demand

    // Absolute directory for (container_id, ifname) (layout::attachment_dir).
    std::string dir_for(const std::string& container_id, const std::string& ifname) const;

    // Creates the directory and pins the record; returns the directory. Throws Error(Code::Io).
    std::string create(const AttachmentRecord& rec);
    void update(const AttachmentRecord& rec); // rewrite the record
    std::optional<AttachmentRecord> find(const std::string& container_id, const std::string& ifname) const;
    std::vector<AttachmentRecord> list() const; // skips (and logs) unreadable dirs
    // Unpins everything in the directory and removes it. No error if absent.
    void remove(const std::string& container_id, const std::string& ifname);

private:
    std::string root_;
};

} // namespace podfence::bpf
