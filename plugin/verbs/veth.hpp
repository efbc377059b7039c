// Finding the pod's veth pair from CNI_NETNS/CNI_IFNAME, with the checks
// that keep podfence from attaching to the wrong device.
#pragma once

#include <string>

#include "../cni/result.hpp"
#include "../netlink/netlink.hpp"

namespace podfence::verbs {

struct VethPair {
    netlink::Link pod;  // CNI_IFNAME inside the pod netns
    netlink::Link host; // its peer, in the runtime's (current) netns
};

// Read-only. Throws Error(UnsupportedInterface) explaining what is wrong:
// not a veth, peer not here, peer not pointing back, or the host side not a
// host interface of prevResult.
VethPair find_veth(const std::string& netns, const std::string& ifname, const cni::Result& prev);

} // namespace podfence::verbs
