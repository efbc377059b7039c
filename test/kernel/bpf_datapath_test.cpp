// Datapath loading/pinning, stubs and links (tcx, XDP).
#include <doctest/doctest.h>

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <thread>

#include "bpf/attach.hpp"
#include "bpf/datapath.hpp"
#include "bpf/podfence_abi.h"
#include "common/error.hpp"
#include "kernel/kernel_fixture.hpp"
#include "netlink/netlink.hpp"
#include "netlink/netns.hpp"

using namespace podfence;

namespace {

ino_t inode_of(const std::string& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_ino;
}

std::vector<std::string> entries(const std::string& dir) {
    std::vector<std::string> out;
    std::string o = pftk::capture("ls -A " + dir);
    std::size_t pos = 0;
    while (pos < o.size()) {
        std::size_t nl = o.find('\n', pos);
        if (nl == std::string::npos) nl = o.size();
        if (nl > pos) out.push_back(o.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

std::uint32_t engine_id(int prog_array_fd) {
    std::uint32_t key = 0, id = 0;
    REQUIRE(bpf_map_lookup_elem(prog_array_fd, &key, &id) == 0); // userspace sees prog ids
    return id;
}

// Dropping the last reference to a link (unpin) frees it from a workqueue
// after an RCU grace period: the detach is asynchronous.
bool eventually_empty(int ifindex, bpf::Hook hook) {
    for (int i = 0; i < 200; ++i) {
        if (bpf::tcx_prog_ids(ifindex, hook).empty()) return true;
        ::usleep(10 * 1000);
    }
    return false;
}

} // namespace

TEST_CASE("ensure_bpffs mounts a bpffs where there is none") {
    pftk::TempBpffs tmp(/*mount_now=*/false);
    CHECK_FALSE(bpf::is_bpffs(tmp.path()));
    bpf::ensure_bpffs(tmp.path());
    CHECK(bpf::is_bpffs(tmp.path()));
    CHECK(pftk::sh("test -d " + tmp.path() + "/podfence") == 0);
    bpf::ensure_bpffs(tmp.path()); // idempotent, no second mount
    CHECK(pftk::capture("grep -c ' " + tmp.path() + " ' /proc/self/mounts") == "1\n");
}

TEST_CASE("NodeLock is exclusive") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::NodeLock lock(fs.path());
    UniqueFd other(::open((fs.path() + "/podfence").c_str(), O_RDONLY | O_DIRECTORY));
    REQUIRE(other);
    CHECK(::flock(other.get(), LOCK_EX | LOCK_NB) == -1);
    CHECK(errno == EWOULDBLOCK);
}

TEST_CASE("NodeLock gives up after its timeout with code 11 naming the holder") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::NodeLock held(fs.path());
    const auto start = std::chrono::steady_clock::now();
    try {
        bpf::NodeLock waiting(fs.path(), std::chrono::milliseconds(200));
        FAIL("the second NodeLock was granted");
    } catch (const Error& e) {
        CHECK(e.code() == Code::TryAgain);
        CHECK(std::string(e.what()).find("pid " + std::to_string(::getpid())) != std::string::npos);
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    CHECK(waited >= std::chrono::milliseconds(200));
    CHECK(waited < std::chrono::seconds(2));
}

TEST_CASE("NodeLock is granted once the holder lets go") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    std::optional<bpf::NodeLock> held(std::in_place, fs.path());
    std::thread release([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        held.reset();
    });
    CHECK_NOTHROW(bpf::NodeLock(fs.path(), std::chrono::seconds(5)));
    release.join();
}

TEST_CASE("datapath loads once, is reused, and never trusts a partial dir") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::NodeLock lock(fs.path());
    const std::string base = fs.path() + "/podfence";
    const std::string name = bpf::embedded_datapath_name();
    const std::string prefix = "datapath-abi" + std::to_string(PF_ABI_VERSION) + "-";
    CHECK(name.rfind(prefix, 0) == 0);
    CHECK(name.size() == prefix.size() + 16); // + the object's hash

    std::uint32_t tc_id = 0, xdp_id = 0;
    ino_t ino = 0;
    {
        auto dp = bpf::Datapath::open_or_load(fs.path());
        CHECK(dp.dir() == base + "/" + name);
        tc_id = bpf::prog_id(dp.tc_prog());
        xdp_id = bpf::prog_id(dp.xdp_prog());
        CHECK(tc_id != 0);
        CHECK(engine_id(dp.tc_engine_map()) == tc_id);
        CHECK(engine_id(dp.xdp_engine_map()) == xdp_id);
        ino = inode_of(dp.dir() + "/" PF_PIN_PROG_TC);
        auto pins = entries(dp.dir());
        CHECK(pins.size() == 16); // 14 maps, 2 programs
    }
    // All fds closed: the pins alone keep programs and engine entries alive.
    {
        auto dp = bpf::Datapath::open_or_load(fs.path());
        CHECK(bpf::prog_id(dp.tc_prog()) == tc_id);
        CHECK(bpf::prog_id(dp.xdp_prog()) == xdp_id);
        CHECK(inode_of(dp.dir() + "/" PF_PIN_PROG_TC) == ino);
        CHECK(engine_id(dp.tc_engine_map()) == tc_id);
        CHECK(entries(base) == std::vector<std::string>{name});
        auto again = bpf::Datapath::open_dir(dp.dir());
        CHECK(bpf::prog_id(again.tc_prog()) == tc_id);
    }
    // A crashed build leaves a .tmp- dir; a hand-damaged datapath lacks a pin.
    pftk::must("mkdir " + base + "/tmp-" + name + "-999999");
    pftk::must("rm " + base + "/" + name + "/pf_events");
    {
        auto dp = bpf::Datapath::open_or_load(fs.path());
        CHECK(bpf::prog_id(dp.tc_prog()) != tc_id); // freshly loaded
        CHECK(entries(base) == std::vector<std::string>{name});
        CHECK(entries(dp.dir()).size() == 16);
    }
    CHECK_THROWS_AS(bpf::Datapath::open_dir(base + "/datapath-nope"), Error);
}

TEST_CASE("tc stubs on tcx links survive their fds while pinned; unpin detaches") {
    REQUIRE(bpf::kernel_has_tcx());
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    pftk::Veth veth("pftk-h3", "pftk-p3");
    const int ifindex = netlink::get_link("pftk-h3")->ifindex;
    const std::string in_pin = fs.path() + "/podfence/link_in", eg_pin = fs.path() + "/podfence/link_eg";

    std::uint32_t in_id = 0, eg_id = 0;
    {
        auto dp = bpf::Datapath::open_or_load(fs.path());
        UniqueFd in_stub = bpf::load_tc_stub(dp, 7, PF_DIR_EGRESS);
        UniqueFd eg_stub = bpf::load_tc_stub(dp, 7, PF_DIR_INGRESS);
        in_id = bpf::prog_id(in_stub.get());
        eg_id = bpf::prog_id(eg_stub.get());
        UniqueFd in_link = bpf::attach_tcx(in_stub.get(), ifindex, bpf::Hook::TcxIngress);
        UniqueFd eg_link = bpf::attach_tcx(eg_stub.get(), ifindex, bpf::Hook::TcxEgress);
        bpf::pin(in_link.get(), in_pin);
        bpf::pin(eg_link.get(), eg_pin);
        CHECK_THROWS_AS(bpf::pin(in_link.get(), in_pin), Error); // already pinned there
    }
    CHECK(bpf::tcx_prog_ids(ifindex, bpf::Hook::TcxIngress) == std::vector<std::uint32_t>{in_id});
    CHECK(bpf::tcx_prog_ids(ifindex, bpf::Hook::TcxEgress) == std::vector<std::uint32_t>{eg_id});
    {
        UniqueFd link = bpf::obj_get(in_pin);
        REQUIRE(link);
        auto st = bpf::link_state(link.get());
        CHECK(st.type == 11); // BPF_LINK_TYPE_TCX
        CHECK(st.ifindex == static_cast<std::uint32_t>(ifindex));
        CHECK(st.attach_type == 46); // BPF_TCX_INGRESS
        CHECK(st.prog_id == in_id);
        CHECK(st.link_id != 0);
        UniqueFd eg = bpf::obj_get(eg_pin);
        CHECK(bpf::link_state(eg.get()).attach_type == 47);
    }
    CHECK_FALSE(bpf::obj_get(fs.path() + "/podfence/nothing"));
    REQUIRE(::unlink(in_pin.c_str()) == 0);
    CHECK(eventually_empty(ifindex, bpf::Hook::TcxIngress));
    CHECK(bpf::tcx_prog_ids(ifindex, bpf::Hook::TcxEgress) == std::vector<std::uint32_t>{eg_id});
    REQUIRE(::unlink(eg_pin.c_str()) == 0);
    CHECK(eventually_empty(ifindex, bpf::Hook::TcxEgress));
    CHECK_THROWS_AS(bpf::attach_tcx(-1, ifindex, bpf::Hook::TcxIngress), Error);
}

TEST_CASE("link_state reports ifindex 0 once the device is gone") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    auto dp = bpf::Datapath::open_or_load(fs.path());
    UniqueFd stub = bpf::load_tc_stub(dp, 1, PF_DIR_EGRESS);
    UniqueFd link;
    {
        pftk::Veth veth("pftk-h4", "pftk-p4");
        link = bpf::attach_tcx(stub.get(), netlink::get_link("pftk-h4")->ifindex, bpf::Hook::TcxIngress);
        CHECK(bpf::link_state(link.get()).ifindex != 0);
    }
    CHECK(bpf::link_state(link.get()).ifindex == 0);
}

TEST_CASE("XDP stubs: native and generic on a veth, fallback where native is missing") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    pftk::Netns ns("pftk-a");
    pftk::Veth veth("pftk-h5", "pftk-p5", {}, ns.name());
    const int ifindex = netlink::get_link("pftk-h5")->ifindex;
    auto dp = bpf::Datapath::open_or_load(fs.path());
    UniqueFd stub = bpf::load_xdp_stub(dp, 9, PF_DIR_EGRESS);
    const auto stub_id = bpf::prog_id(stub.get());

    bpf::XdpMode used = bpf::XdpMode::Generic;
    {
        UniqueFd link = bpf::attach_xdp(stub.get(), ifindex, bpf::XdpMode::Native, &used);
        CHECK(used == bpf::XdpMode::Native);
        auto st = bpf::link_state(link.get());
        CHECK(st.type == BPF_LINK_TYPE_XDP);
        CHECK(st.ifindex == static_cast<std::uint32_t>(ifindex));
        CHECK(st.prog_id == stub_id);
        // iproute2 prints "xdp" for driver mode, "xdpgeneric" for skb mode.
        std::string show = pftk::capture("ip link show dev pftk-h5");
        CHECK(show.find(" xdp ") != std::string::npos);
        CHECK(show.find("xdpgeneric") == std::string::npos);
    }
    // Closing the last fd also frees the link asynchronously.
    for (int i = 0;
         i < 200 && pftk::capture("ip link show dev pftk-h5").find("prog/xdp") != std::string::npos; ++i)
        ::usleep(10 * 1000);
    CHECK(pftk::capture("ip link show dev pftk-h5").find("prog/xdp") == std::string::npos);
    {
        UniqueFd link = bpf::attach_xdp(stub.get(), ifindex, bpf::XdpMode::Generic, &used);
        CHECK(used == bpf::XdpMode::Generic);
        CHECK(pftk::capture("ip link show dev pftk-h5").find("xdpgeneric") != std::string::npos);
    }
    {
        // lo has no native XDP: Native must fall back to generic (inside our netns).
        netlink::NetnsGuard in(ns.path());
        const int lo = netlink::get_link("lo")->ifindex;
        UniqueFd link = bpf::attach_xdp(stub.get(), lo, bpf::XdpMode::Native, &used);
        CHECK(used == bpf::XdpMode::Generic);
        CHECK(bpf::link_state(link.get()).ifindex == static_cast<std::uint32_t>(lo));
    }
}
