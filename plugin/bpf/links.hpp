// BPF link attachments (tcx, XDP) of a stub to an interface, and what the
// kernel reports about links and programs.
#pragma once

#include <cstdint>
#include <vector>

#include "../common/fd.hpp"

namespace podfence::bpf {

enum class Hook {
    TcxIngress, // host veth, packets the pod sends      (PF_DIR_EGRESS)
    TcxEgress,  // host veth, packets sent to the pod    (PF_DIR_INGRESS)
    Xdp,        // XDP on the interface it is attached to (direction given to the stub)
};

enum class XdpMode { Native, Generic };

bool kernel_has_tcx(); // probes BPF_LINK_CREATE with the tcx attach types

// bpf_link attachments (libbpf 1.1 has no tcx API: raw BPF_LINK_CREATE).
// Throw Error(Code::Attach) naming the interface and hook.
UniqueFd attach_tcx(int prog_fd, int ifindex, Hook hook);
// Native first unless `mode` is Generic; falls back to generic (logged) if
// native fails. `used` reports the mode that took.
UniqueFd attach_xdp(int prog_fd, int ifindex, XdpMode mode, XdpMode* used);

// What the kernel says about a link.
struct LinkState {
    std::uint32_t link_id = 0;
    std::uint32_t prog_id = 0;
    std::uint32_t ifindex = 0;     // 0 once the link was detached or its device is gone
    std::uint32_t attach_type = 0; // kernel's attach type for tcx links
    std::uint32_t type = 0;        // BPF_LINK_TYPE_*
};
LinkState link_state(int link_fd);
// Program ids attached at a tcx hook of ifindex (BPF_PROG_QUERY).
std::vector<std::uint32_t> tcx_prog_ids(int ifindex, Hook hook);
std::uint32_t prog_id(int prog_fd);

} // namespace podfence::bpf
