// Attachments of a stub to an interface, and what the kernel reports about
// links and programs. Stubs are attached WITHOUT bpf_links (tcx by
// BPF_PROG_ATTACH, XDP by netlink): the device then holds the program, so a
// lost bpffs or a deleted pin cannot take a pod's policy away (fail closed).
// bpf_links are what earlier podfence versions pinned; they are still read,
// updated and detached for the attachments it made.
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

// Throw Error(Code::Attach) naming the interface and hook.
// replace_fd >= 0: swap that program for prog_fd in place, atomically (the
// hook is never without a program); it must be the one attached there.
void tcx_attach(int prog_fd, int ifindex, Hook hook, int replace_fd = -1);
// Native first unless `mode` is Generic; falls back to generic (logged) if
// native fails. `used` reports the mode that took. Never replaces a program
// it was not told to (someone else's XDP makes it fail).
void xdp_attach(int prog_fd, int ifindex, XdpMode mode, XdpMode* used, int replace_fd = -1);
// Remove prog_fd from the hook if it is attached there; false if it was not
// (or the device is gone). Never removes another program.
bool tcx_detach(int prog_fd, int ifindex, Hook hook);
bool xdp_detach(int prog_fd, int ifindex);
// The program at an interface's XDP hook (either mode); 0 for none.
std::uint32_t xdp_prog_id(int ifindex);
// The podfence stub (a program named pf_stub*) at the hook, found by asking
// the kernel, not the pins; empty when there is none. One pod owns a veth, so
// there is at most one.
UniqueFd stub_at(int ifindex, Hook hook);
UniqueFd prog_by_id(std::uint32_t id); // empty if the program is gone
bool is_stub(int prog_fd);             // named pf_stub*

// bpf_links: what earlier podfence versions pinned, and what tests use (closing
// the fd detaches). Throw Error(Code::Attach).
UniqueFd attach_tcx(int prog_fd, int ifindex, Hook hook);
UniqueFd attach_xdp(int prog_fd, int ifindex, XdpMode mode, XdpMode* used);
// Swaps the link's program in place (BPF_LINK_UPDATE), expecting old_fd.
void update_link(int link_fd, int prog_fd, int old_fd);

// What the kernel says about a link.
struct LinkState {
    std::uint32_t link_id = 0;
    std::uint32_t prog_id = 0;
    std::uint32_t ifindex = 0;     // 0 once the link was detached or its device is gone
    std::uint32_t attach_type = 0; // kernel's attach type for tcx links
    std::uint32_t type = 0;        // BPF_LINK_TYPE_*
};
LinkState link_state(int link_fd);
// Program ids attached at a tcx hook of ifindex (BPF_PROG_QUERY); none if
// the device is gone.
std::vector<std::uint32_t> tcx_prog_ids(int ifindex, Hook hook);
std::uint32_t prog_id(int prog_fd);

} // namespace podfence::bpf
