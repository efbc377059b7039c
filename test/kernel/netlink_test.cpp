// rtnetlink plumbing: links across netns, legacy clsact + cls_bpf.
#include <doctest/doctest.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>

#include "common/error.hpp"
#include "kernel/kernel_fixture.hpp"
#include "netlink/netlink.hpp"
#include "netlink/netns.hpp"

using namespace podfence;

namespace {

// A trivial direct-action tc program to hang on filters.
UniqueFd pass_prog() {
    bpf_insn prog[2] = {};
    prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
    prog[0].imm = TC_ACT_OK;
    prog[1].code = BPF_JMP | BPF_EXIT;
    return UniqueFd(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "pftk_pass", "GPL", prog, 2, nullptr));
}

std::uint32_t id_of(int prog_fd) {
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    REQUIRE(bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0);
    return info.id;
}

} // namespace

TEST_CASE("get_link finds a veth and its peer across netns") {
    pftk::Netns ns("pftk-a");
    pftk::Veth veth("pftk-h0", "pftk-p0", {}, ns.name());

    auto host = netlink::get_link("pftk-h0");
    REQUIRE(host);
    CHECK(host->kind == "veth");
    CHECK(host->name == "pftk-h0");
    CHECK(host->link_netnsid >= 0); // peer lives in another netns
    CHECK(host->mac != std::array<std::uint8_t, 6>{});

    auto by_index = netlink::get_link(host->ifindex);
    REQUIRE(by_index);
    CHECK(by_index->name == "pftk-h0");
    CHECK(by_index->peer_ifindex == host->peer_ifindex);

    auto all = netlink::list_links();
    CHECK(std::any_of(all.begin(), all.end(),
                      [&](const netlink::Link& l) { return l.ifindex == host->ifindex; }));
    CHECK_FALSE(netlink::get_link("pftk-nosuch"));
    CHECK_FALSE(netlink::get_link(0x7ffffff0));

    {
        netlink::NetnsGuard in(ns.path());
        auto pod = netlink::get_link("pftk-p0");
        REQUIRE(pod);
        CHECK(pod->kind == "veth");
        CHECK(pod->ifindex == host->peer_ifindex);
        CHECK(pod->peer_ifindex == host->ifindex);
        CHECK_FALSE(netlink::get_link("pftk-h0")); // not visible from inside
    }
    // The guard restored the host netns.
    CHECK(netlink::get_link("pftk-h0"));
}

TEST_CASE("NetnsGuard rejects a missing netns with InvalidEnv") {
    try {
        netlink::NetnsGuard g("/run/netns/pftk-does-not-exist");
        FAIL("entered a missing netns");
    } catch (const Error& e) {
        CHECK(e.code() == Code::InvalidEnv);
        CHECK(std::string(e.what()).find("pftk-does-not-exist") != std::string::npos);
    }
}

TEST_CASE("legacy clsact + cls_bpf leave a foreign qdisc and filter alone") {
    pftk::Veth veth("pftk-h1", "pftk-p1");
    const int ifindex = netlink::get_link("pftk-h1")->ifindex;
    UniqueFd prog = pass_prog();
    REQUIRE(prog);

    // Someone else's clsact and filter, there first.
    pftk::must("tc qdisc add dev pftk-h1 clsact");
    pftk::must("tc filter add dev pftk-h1 ingress prio 1 protocol all u32 match u32 0 0 classid 1:1");
    CHECK(netlink::has_clsact(ifindex));
    CHECK_FALSE(netlink::ensure_clsact(ifindex)); // existing: not ours
    CHECK(netlink::count_filters(ifindex, true) == 1);
    CHECK_FALSE(netlink::bpf_filter_prog_id(ifindex, true));

    netlink::add_bpf_filter(ifindex, true, prog.get(), "pftk_pass");
    CHECK(netlink::bpf_filter_prog_id(ifindex, true) == id_of(prog.get()));
    CHECK_FALSE(netlink::bpf_filter_prog_id(ifindex, false));
    CHECK(netlink::count_filters(ifindex, true) == 2);
    // Adding again replaces ours in place instead of stacking a second one.
    netlink::add_bpf_filter(ifindex, true, prog.get(), "pftk_pass");
    CHECK(netlink::count_filters(ifindex, true) == 2);

    netlink::delete_bpf_filter(ifindex, true);
    CHECK_FALSE(netlink::bpf_filter_prog_id(ifindex, true));
    CHECK(netlink::count_filters(ifindex, true) == 1); // the foreign u32 survives
    CHECK(netlink::has_clsact(ifindex));
    CHECK(pftk::capture("tc filter show dev pftk-h1 ingress").find("u32") != std::string::npos);
    netlink::delete_bpf_filter(ifindex, true); // absent: no error
}

TEST_CASE("legacy clsact created by podfence is removable") {
    pftk::Veth veth("pftk-h2", "pftk-p2");
    const int ifindex = netlink::get_link("pftk-h2")->ifindex;
    UniqueFd prog = pass_prog();
    REQUIRE(prog);

    CHECK_FALSE(netlink::has_clsact(ifindex));
    CHECK(netlink::count_filters(ifindex, false) == 0);
    CHECK(netlink::ensure_clsact(ifindex));
    CHECK(netlink::has_clsact(ifindex));
    CHECK_FALSE(netlink::ensure_clsact(ifindex));

    netlink::add_bpf_filter(ifindex, false, prog.get(), "pftk_pass");
    CHECK(netlink::bpf_filter_prog_id(ifindex, false) == id_of(prog.get()));
    CHECK(netlink::count_filters(ifindex, false) == 1);
    // The filter holds the program: closing our fd does not detach it.
    const auto id = id_of(prog.get());
    prog.reset();
    CHECK(netlink::bpf_filter_prog_id(ifindex, false) == id);

    netlink::delete_bpf_filter(ifindex, false);
    CHECK(netlink::count_filters(ifindex, false) == 0);
    netlink::delete_clsact(ifindex);
    CHECK_FALSE(netlink::has_clsact(ifindex));
    netlink::delete_clsact(ifindex); // absent: no error
}
