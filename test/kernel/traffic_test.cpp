// Real packets between two netns through stubs + the engine: a pod allowing
// TCP 8080 only from its peer. Exercises the whole chain end to end:
// stub -> pf_scratch -> tail call -> engine -> policy map.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "bpf/attach.hpp"
#include "bpf/datapath.hpp"
#include "bpf/policy_store.hpp"
#include "common/error.hpp"
#include "kernel/kernel_fixture.hpp"
#include "kernel/policy_entries.hpp"
#include "netlink/netlink.hpp"
#include "netlink/netns.hpp"

using namespace podfence;

namespace {

constexpr const char* kHostIp = "10.251.0.1"; // netns pftk-a, "host" side
constexpr const char* kPodIp = "10.251.0.2";  // netns pftk-b, "pod"

UniqueFd listen_on(std::uint16_t port) {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(s);
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(s.get(), 4) == 0);
    return s;
}

// Connect from the current netns; true if the handshake completed in time.
bool connects(const char* ip, std::uint16_t port, int timeout_ms) {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    REQUIRE(s);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
    if (errno != EINPROGRESS) return false;
    pollfd p{s.get(), POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return false;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    return err == 0;
}

std::uint64_t denied_packets(const bpf::Datapath& dp, std::uint32_t slot, std::uint32_t dir) {
    std::vector<pf_counter> v(libbpf_num_possible_cpus());
    std::uint32_t idx = slot * PF_NUM_DIRS + dir;
    REQUIRE(bpf_map_lookup_elem(dp.counters_map(), &idx, v.data()) == 0);
    std::uint64_t n = 0;
    for (const auto& c : v)
        n += c.denied_packets;
    return n;
}

struct Pod {
    pftk::TempBpffs fs;
    pftk::Netns host{"pftk-a"}, pod{"pftk-b"};
    pftk::Veth veth{"pftk-va", "pftk-vb", "pftk-a", "pftk-b"};
    Pod() {
        pftk::must(std::string("ip -n pftk-a addr add ") + kHostIp + "/30 dev pftk-va");
        pftk::must(std::string("ip -n pftk-b addr add ") + kPodIp + "/30 dev pftk-vb");
        bpf::ensure_bpffs(fs.path());
    }
};

// The datapath loaded into the pod's private bpffs and one slot whose policy
// allows TCP 8080 from the host side only.
struct Enforced : Pod {
    bpf::NodeLock lock{fs.path()};
    bpf::Datapath dp = bpf::Datapath::open_or_load(fs.path());
    bpf::PolicyStore store{dp};
    std::uint32_t slot = store.allocate_slot();
    Enforced() { store.replace(slot, pftk::allow_tcp_from(kHostIp, 8080)); }
};

// From the host side: `allowed` connects, `denied` does not and is counted.
void expect_policy(const Enforced& e, std::uint16_t allowed, std::uint16_t denied) {
    UniqueFd l_allowed, l_denied;
    {
        netlink::NetnsGuard in(e.pod.path());
        l_allowed = listen_on(allowed);
        l_denied = listen_on(denied);
    }
    netlink::NetnsGuard in(e.host.path());
    CHECK(connects(kPodIp, allowed, 2000));
    const auto denied_before = denied_packets(e.dp, e.slot, PF_DIR_INGRESS);
    CHECK_FALSE(connects(kPodIp, denied, 1000));
    CHECK(denied_packets(e.dp, e.slot, PF_DIR_INGRESS) > denied_before);
    CHECK(connects(kPodIp, allowed, 2000)); // still allowed after a denial
}

} // namespace

TEST_CASE("traffic: tcx stubs on the host veth enforce the pod's policy") {
    Enforced e;
    UniqueFd to_pod, from_pod;
    {
        netlink::NetnsGuard in(e.host.path());
        const int ifindex = netlink::get_link("pftk-va")->ifindex;
        UniqueFd s_in = bpf::load_tc_stub(e.dp, e.slot, PF_DIR_INGRESS);
        UniqueFd s_eg = bpf::load_tc_stub(e.dp, e.slot, PF_DIR_EGRESS);
        to_pod = bpf::attach_tcx(s_in.get(), ifindex, bpf::Hook::TcxEgress);
        from_pod = bpf::attach_tcx(s_eg.get(), ifindex, bpf::Hook::TcxIngress);
    }
    expect_policy(e, 8080, 8081);

    // Replacing the policy (now 8081 only) takes effect for new connections.
    e.store.replace(e.slot, pftk::allow_tcp_from(kHostIp, 8081));
    expect_policy(e, 8081, 8080);
}

TEST_CASE("traffic: XDP stubs (pod eth0 for ingress, host veth for egress) enforce the pod's policy") {
    Enforced e;

    // One of each mode: generic on the pod side (as CNI would choose to keep
    // TSO, see FIELD-NOTES), native on the host side.
    UniqueFd ingress_link, egress_link;
    bpf::XdpMode used{};
    {
        netlink::NetnsGuard in(e.pod.path());
        UniqueFd stub = bpf::load_xdp_stub(e.dp, e.slot, PF_DIR_INGRESS);
        ingress_link =
            bpf::attach_xdp(stub.get(), netlink::get_link("pftk-vb")->ifindex, bpf::XdpMode::Generic, &used);
    }
    {
        netlink::NetnsGuard in(e.host.path());
        UniqueFd stub = bpf::load_xdp_stub(e.dp, e.slot, PF_DIR_EGRESS);
        egress_link =
            bpf::attach_xdp(stub.get(), netlink::get_link("pftk-va")->ifindex, bpf::XdpMode::Native, &used);
        CHECK(used == bpf::XdpMode::Native);
    }
    expect_policy(e, 8080, 8081);
}
