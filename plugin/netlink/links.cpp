// RTM_GETLINK: by index, by name, and dump.
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>

#include "common/error.hpp"
#include "netlink.hpp"
#include "rtnl.hpp"

namespace podfence::netlink {
namespace {

using detail::Request;
using detail::Rtnl;

void parse_linkinfo(const nlattr* nest, Link& link) {
    detail::for_each_nested(nest, [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == IFLA_INFO_KIND) link.kind = mnl_attr_get_str(a);
    });
}

Link parse_link(const nlmsghdr* nlh) {
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    Link link;
    link.ifindex = ifi->ifi_index;
    link.flags = ifi->ifi_flags;
    detail::for_each_attr(nlh, sizeof(*ifi), [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
        case IFLA_IFNAME: link.name = mnl_attr_get_str(a); break;
        case IFLA_LINK: link.peer_ifindex = static_cast<int>(mnl_attr_get_u32(a)); break;
        case IFLA_LINK_NETNSID: link.link_netnsid = static_cast<int>(mnl_attr_get_u32(a)); break;
        case IFLA_ADDRESS:
            if (mnl_attr_get_payload_len(a) == link.mac.size())
                std::memcpy(link.mac.data(), mnl_attr_get_payload(a), link.mac.size());
            break;
        case IFLA_LINKINFO: parse_linkinfo(a, link); break;
        default: break;
        }
    });
    return link;
}

std::optional<Link> get_one(int ifindex, const std::string& name, const std::string& what) {
    Rtnl rtnl;
    Request req(RTM_GETLINK, 0);
    auto* ifi = req.put_extra<ifinfomsg>();
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    if (!name.empty()) mnl_attr_put_strz(req.hdr(), IFLA_IFNAME, name.c_str());
    std::optional<Link> out;
    int err = rtnl.roundtrip(
        req,
        [&](const nlmsghdr* nlh) {
            if (nlh->nlmsg_type == RTM_NEWLINK) out = parse_link(nlh);
        },
        what);
    if (err == ENODEV) return std::nullopt;
    if (err) throw errno_error(Code::Io, "RTM_GETLINK", what, err);
    return out;
}

} // namespace

std::optional<Link> get_link(int ifindex) {
    if (ifindex <= 0) return std::nullopt;
    return get_one(ifindex, {}, "ifindex " + std::to_string(ifindex));
}

std::optional<Link> get_link(const std::string& name) {
    // IFLA_IFNAME longer than IFNAMSIZ-1 is rejected with EINVAL: no such link.
    if (name.empty() || name.size() >= IFNAMSIZ) return std::nullopt;
    return get_one(0, name, "name " + name);
}

std::vector<Link> list_links() {
    Rtnl rtnl;
    Request req(RTM_GETLINK, NLM_F_DUMP);
    req.put_extra<ifinfomsg>()->ifi_family = AF_UNSPEC;
    std::vector<Link> out;
    int err = rtnl.roundtrip(
        req,
        [&](const nlmsghdr* nlh) {
            if (nlh->nlmsg_type == RTM_NEWLINK) out.push_back(parse_link(nlh));
        },
        "dump");
    if (err) throw errno_error(Code::Io, "RTM_GETLINK", "dump", err);
    return out;
}

} // namespace podfence::netlink
