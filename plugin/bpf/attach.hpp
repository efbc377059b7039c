// Attach points: per-attachment stub programs and the links that hold them
// on an interface. See bpf/podfence_abi.h (pf_scratch) for why stubs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../common/fd.hpp"
#include "datapath.hpp"

namespace podfence::bpf {

enum class Hook {
    TcxIngress, // host veth, packets the pod sends      (PF_DIR_EGRESS)
    TcxEgress,  // host veth, packets sent to the pod    (PF_DIR_INGRESS)
    Xdp,        // XDP on the interface it is attached to (direction given to the stub)
};

enum class XdpMode { Native, Generic };

// Loads a stub: writes {slot, dir} to pf_scratch and tail-calls the TC or
// XDP engine; drops if the tail call fails. Throws Error(Code::BpfLoad).
UniqueFd load_tc_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir);
UniqueFd load_xdp_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir);

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

// Pinning helpers (bpffs). pin() throws Error(Code::Io); obj_get() returns an
// empty fd when the path does not exist and throws on other errors.
void pin(int fd, const std::string& path);
UniqueFd obj_get(const std::string& path);

} // namespace podfence::bpf
