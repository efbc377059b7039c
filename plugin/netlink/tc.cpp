// Legacy tc for kernels without tcx: the clsact qdisc and one direct-action
// cls_bpf filter per hook at podfence's fixed handle/prio.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include <cerrno>

#include "common/error.hpp"
#include "netlink.hpp"
#include "rtnl.hpp"

namespace podfence::netlink {
namespace {

using detail::Request;
using detail::Rtnl;

const char* hook_name(bool ingress) {
    return ingress ? "ingress" : "egress";
}

std::string on_dev(int ifindex) {
    return " on ifindex " + std::to_string(ifindex);
}

tcmsg* put_tcmsg(Request& req, int ifindex, std::uint32_t parent, std::uint32_t handle, std::uint32_t info) {
    auto* t = req.put_extra<tcmsg>();
    t->tcm_family = AF_UNSPEC;
    t->tcm_ifindex = ifindex;
    t->tcm_parent = parent;
    t->tcm_handle = handle;
    t->tcm_info = info;
    return t;
}

std::uint32_t hook_parent(bool ingress) {
    return TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
}

// tcm_info of a filter: priority in the upper 16 bits, protocol (network order) below.
std::uint32_t filter_info() {
    return TC_H_MAKE(std::uint32_t{kFilterPrio} << 16, htons(ETH_P_ALL));
}

std::string attr_kind(const nlmsghdr* nlh) {
    std::string kind;
    detail::for_each_attr(nlh, sizeof(tcmsg), [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == TCA_KIND) kind = mnl_attr_get_str(a);
    });
    return kind;
}

// Every filter message at one hook of ifindex (including the per-priority
// header entries the kernel emits with handle 0).
void dump_filters(int ifindex, bool ingress, const std::function<void(const nlmsghdr*, const tcmsg*)>& fn) {
    Rtnl rtnl;
    Request req(RTM_GETTFILTER, NLM_F_DUMP);
    put_tcmsg(req, ifindex, hook_parent(ingress), 0, 0);
    int err = rtnl.roundtrip(
        req,
        [&](const nlmsghdr* nlh) {
            if (nlh->nlmsg_type != RTM_NEWTFILTER) return;
            const auto* t = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(nlh));
            if (t->tcm_ifindex != ifindex) return;
            fn(nlh, t);
        },
        std::string("filter dump ") + hook_name(ingress) + on_dev(ifindex));
    // No clsact (or no device): there are no filters to report.
    if (err == EINVAL || err == ENOENT || err == ENODEV) return;
    if (err)
        throw errno_error(Code::Attach, "RTM_GETTFILTER",
                          std::string("dump at ") + hook_name(ingress) + on_dev(ifindex), err);
}

} // namespace

bool has_clsact(int ifindex) {
    Rtnl rtnl;
    Request req(RTM_GETQDISC, NLM_F_DUMP);
    put_tcmsg(req, ifindex, 0, 0, 0);
    bool found = false;
    int err = rtnl.roundtrip(
        req,
        [&](const nlmsghdr* nlh) {
            if (nlh->nlmsg_type != RTM_NEWQDISC) return;
            const auto* t = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(nlh));
            if (t->tcm_ifindex == ifindex && t->tcm_parent == TC_H_CLSACT && attr_kind(nlh) == "clsact")
                found = true;
        },
        "qdisc dump" + on_dev(ifindex));
    if (err) throw errno_error(Code::Attach, "RTM_GETQDISC", "dump" + on_dev(ifindex), err);
    return found;
}

bool ensure_clsact(int ifindex) {
    if (has_clsact(ifindex)) return false;
    Rtnl rtnl;
    Request req(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL);
    put_tcmsg(req, ifindex, TC_H_CLSACT, TC_H_MAKE(TC_H_CLSACT, 0), 0);
    mnl_attr_put_strz(req.hdr(), TCA_KIND, "clsact");
    int err = rtnl.roundtrip(
        req, [](const nlmsghdr*) {}, "add clsact" + on_dev(ifindex));
    if (err == EEXIST) {
        // Raced with someone adding clsact: fine. Another qdisc kind at the
        // ingress parent (e.g. "ingress") is not something we can share.
        if (has_clsact(ifindex)) return false;
        throw Error(Code::Attach,
                    "RTM_NEWQDISC clsact" + on_dev(ifindex) +
                        ": another qdisc occupies the ingress/clsact parent; remove it or use tcx");
    }
    if (err) throw errno_error(Code::Attach, "RTM_NEWQDISC", "clsact" + on_dev(ifindex), err);
    return true;
}

void delete_clsact(int ifindex) {
    Rtnl rtnl;
    Request req(RTM_DELQDISC, 0);
    put_tcmsg(req, ifindex, TC_H_CLSACT, TC_H_MAKE(TC_H_CLSACT, 0), 0);
    mnl_attr_put_strz(req.hdr(), TCA_KIND, "clsact");
    int err = rtnl.roundtrip(
        req, [](const nlmsghdr*) {}, "delete clsact" + on_dev(ifindex));
    if (err == ENOENT || err == EINVAL || err == ENODEV) return; // already gone
    if (err) throw errno_error(Code::Attach, "RTM_DELQDISC", "clsact" + on_dev(ifindex), err);
}

void add_bpf_filter(int ifindex, bool ingress, int prog_fd, const std::string& name) {
    Rtnl rtnl;
    // REPLACE: a retried ADD swaps the program of our own filter in place.
    Request req(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE);
    put_tcmsg(req, ifindex, hook_parent(ingress), kFilterHandle, filter_info());
    mnl_attr_put_strz(req.hdr(), TCA_KIND, "bpf");
    nlattr* opts = mnl_attr_nest_start(req.hdr(), TCA_OPTIONS);
    mnl_attr_put_u32(req.hdr(), TCA_BPF_FD, static_cast<std::uint32_t>(prog_fd));
    mnl_attr_put_strz(req.hdr(), TCA_BPF_NAME, name.c_str());
    mnl_attr_put_u32(req.hdr(), TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT);
    mnl_attr_nest_end(req.hdr(), opts);
    int err = rtnl.roundtrip(
        req, [](const nlmsghdr*) {}, std::string("add cls_bpf ") + hook_name(ingress) + on_dev(ifindex));
    if (err)
        throw errno_error(Code::Attach, "RTM_NEWTFILTER",
                          "cls_bpf " + name + " at " + hook_name(ingress) + on_dev(ifindex), err);
}

void delete_bpf_filter(int ifindex, bool ingress) {
    if (!bpf_filter_prog_id(ifindex, ingress)) return; // absent: nothing to do
    Rtnl rtnl;
    Request req(RTM_DELTFILTER, 0);
    put_tcmsg(req, ifindex, hook_parent(ingress), kFilterHandle, filter_info());
    mnl_attr_put_strz(req.hdr(), TCA_KIND, "bpf");
    int err = rtnl.roundtrip(
        req, [](const nlmsghdr*) {}, std::string("delete cls_bpf ") + hook_name(ingress) + on_dev(ifindex));
    if (err == ENOENT || err == ENODEV) return;
    if (err)
        throw errno_error(Code::Attach, "RTM_DELTFILTER",
                          std::string("cls_bpf at ") + hook_name(ingress) + on_dev(ifindex), err);
}

std::optional<std::uint32_t> bpf_filter_prog_id(int ifindex, bool ingress) {
    std::optional<std::uint32_t> id;
    dump_filters(ifindex, ingress, [&](const nlmsghdr* nlh, const tcmsg* t) {
        if (t->tcm_handle != kFilterHandle || TC_H_MAJ(t->tcm_info) >> 16 != kFilterPrio) return;
        if (attr_kind(nlh) != "bpf") return;
        detail::for_each_attr(nlh, sizeof(tcmsg), [&](const nlattr* a) {
            if (mnl_attr_get_type(a) != TCA_OPTIONS) return;
            detail::for_each_nested(a, [&](const nlattr* o) {
                if (mnl_attr_get_type(o) == TCA_BPF_ID) id = mnl_attr_get_u32(o);
            });
        });
    });
    return id;
}

int count_filters(int ifindex, bool ingress) {
    int n = 0;
    // The kernel emits one handle-0 header per classifier instance (prio,
    // protocol) before its filters; counting those counts "filters" the way
    // tc users think of them (u32 would otherwise count its hash tables too).
    dump_filters(ifindex, ingress, [&](const nlmsghdr*, const tcmsg* t) {
        if (t->tcm_handle == 0) ++n;
    });
    return n;
}

} // namespace podfence::netlink
