// rtnetlink through libmnl: links, and the legacy clsact/cls_bpf fallback.
// Every call works in the calling thread's current network namespace.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace podfence::netlink {

struct Link {
    int ifindex = 0;
    std::string name;
    std::string kind;      // IFLA_INFO_KIND: "veth", "bridge", "ipvlan", ... ("" if none)
    int peer_ifindex = 0;  // IFLA_LINK: for a veth, the peer's ifindex (in the peer's netns)
    int link_netnsid = -1; // IFLA_LINK_NETNSID, -1 if absent
    std::array<std::uint8_t, 6> mac{};
    unsigned flags = 0; // IFF_*
};

std::optional<Link> get_link(int ifindex); // nullopt if no such link
std::optional<Link> get_link(const std::string& name);
std::vector<Link> list_links();

// ---- legacy tc (kernels without tcx) ----
// podfence owns exactly one cls_bpf filter per hook at this handle/prio.
inline constexpr std::uint32_t kFilterHandle = 0x9f0d;
inline constexpr std::uint16_t kFilterPrio = 0x9f0d & 0x7fff;

// Creates the clsact qdisc if absent. Returns true if this call created it.
bool ensure_clsact(int ifindex);
bool has_clsact(int ifindex);
void delete_clsact(int ifindex); // only call for a qdisc podfence created
// ingress=true: TC_H_MIN_INGRESS, false: TC_H_MIN_EGRESS. direct-action.
void add_bpf_filter(int ifindex, bool ingress, int prog_fd, const std::string& name);
void delete_bpf_filter(int ifindex, bool ingress); // no error if absent
// prog id of podfence's filter at that hook, nullopt if none.
std::optional<std::uint32_t> bpf_filter_prog_id(int ifindex, bool ingress);
// number of filters (classifier instances: prio+protocol) of any owner at that
// hook (to decide whether a qdisc we created is still used)
int count_filters(int ifindex, bool ingress);

} // namespace podfence::netlink
