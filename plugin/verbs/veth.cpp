#include "veth.hpp"

#include "../common/error.hpp"
#include "../netlink/netns.hpp"

namespace podfence::verbs {

VethPair find_veth(const std::string& netns, const std::string& ifname, const cni::Result& prev) {
    VethPair v;
    {
        netlink::NetnsGuard in_pod(netns);
        auto pod = netlink::get_link(ifname);
        if (!pod)
            throw Error(Code::UnsupportedInterface, "interface " + ifname + " not found in " + netns +
                                                        " (did the previous plugin create it?)");
        v.pod = *pod;
    }
    if (v.pod.kind != "veth")
        throw Error(Code::UnsupportedInterface,
                    "podfence needs a veth; " + ifname + " is " +
                        (v.pod.kind.empty() ? "a device without link kind" : v.pod.kind) +
                        " (ipvlan/macvlan are not supported)");
    auto host = netlink::get_link(v.pod.peer_ifindex);
    if (!host)
        throw Error(Code::UnsupportedInterface, "the veth peer of " + ifname + " (ifindex " +
                                                    std::to_string(v.pod.peer_ifindex) +
                                                    ") is not in the runtime's network namespace");
    // A veth pointing back at the pod's ifindex: defends against an ifindex
    // that merely happens to exist here.
    if (host->kind != "veth" || host->peer_ifindex != v.pod.ifindex)
        throw Error(Code::UnsupportedInterface, "ifindex " + std::to_string(v.pod.peer_ifindex) +
                                                    " here is " + host->name + " (" +
                                                    (host->kind.empty() ? "no link kind" : host->kind) +
                                                    "), not the veth peer of " + ifname);
    if (!prev.has_host_interface(host->name))
        throw Error(
            Code::UnsupportedInterface,
            "host veth " + host->name + " of " + ifname +
                " is not listed in prevResult.interfaces as a host interface (no \"sandbox\"); podfence "
                "only attaches to interfaces the previous plugin reported");
    v.host = *host;
    return v;
}

} // namespace podfence::verbs
