// PolicyStore (per-pod policy maps, slot state) and StateStore (attachment records).
#include <doctest/doctest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "bpf/attach.hpp"
#include "bpf/datapath.hpp"
#include "bpf/policy_store.hpp"
#include "bpf/state.hpp"
#include "common/error.hpp"
#include "kernel/kernel_fixture.hpp"
#include "kernel/policy_entries.hpp"
#include "netlink/netlink.hpp"

using namespace podfence;
using policy::PolicyEntry;

namespace {

// compile()'s order (policy::operator<), as PolicyStore::read returns.
std::vector<PolicyEntry> sorted(std::vector<PolicyEntry> v) {
    std::sort(v.begin(), v.end());
    return v;
}

std::uint32_t inner_id(const bpf::Datapath& dp, std::uint32_t slot) {
    std::uint32_t id = 0;
    REQUIRE(bpf_map_lookup_elem(dp.policy_map(), &slot, &id) == 0);
    return id;
}

std::size_t count_keys(int fd, std::size_t key_size) {
    std::vector<char> cur(key_size), next(key_size);
    std::size_t n = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
        ++n;
        cur = next;
        prev = cur.data();
    }
    return n;
}

struct Loaded {
    pftk::TempBpffs fs;
    bpf::Datapath dp = (bpf::ensure_bpffs(fs.path()), bpf::Datapath::open_or_load(fs.path()));
};

} // namespace

TEST_CASE("policy_store: replace/read round trip, revisions, atomic swap") {
    Loaded l;
    bpf::PolicyStore store(l.dp);
    CHECK(store.allocate_slot() == 0);
    CHECK(store.read(3).empty());

    const auto a = pftk::allow_tcp_from("10.251.0.1", 8080);
    const auto rev1 = store.replace(3, a);
    CHECK(rev1 >= 1);
    CHECK(store.revision(3) == rev1);
    CHECK(store.read(3) == sorted(a));
    CHECK(store.allocate_slot() == 0); // slot 3 taken, 0 still free

    const auto rev0 = store.replace(0, a);
    CHECK(rev0 > rev1);
    CHECK(store.allocate_slot() == 1);

    // Swap: the old map is untouched up to the outer update, then replaced whole.
    const auto old_id = inner_id(l.dp, 3);
    UniqueFd old_map(bpf_map_get_fd_by_id(old_id));
    REQUIRE(old_map);
    const auto b = pftk::allow_tcp_from("10.251.0.9", 9090);
    const auto rev2 = store.replace(3, b);
    CHECK(rev2 > rev0);
    CHECK(inner_id(l.dp, 3) != old_id);
    CHECK(store.read(3) == sorted(b));
    CHECK(count_keys(old_map.get(), sizeof(pf_policy_key)) == a.size()); // never modified in place

    // A failing replace leaves the live policy and revision as they were.
    auto bad = b;
    bad.back().key.prefixlen = 8 * (sizeof(pf_policy_key) - 4) + 1; // longer than a key allows
    try {
        store.replace(3, bad);
        FAIL("replace accepted an invalid entry");
    } catch (const Error& e) {
        CHECK(e.code() == Code::MapSeed);
        CHECK(std::string(e.what()).find("pf_pod_3") != std::string::npos);
    }
    CHECK(store.revision(3) == rev2);
    CHECK(store.read(3) == sorted(b));
    CHECK_THROWS_AS(store.replace(PF_MAX_SLOTS, b), Error);
}

TEST_CASE("policy_store: a datapath of another policy-map ABI is never written or read") {
    Loaded l;
    bpf::PolicyStore(l.dp).replace(5, pftk::allow_tcp_from("10.251.0.1", 8080));
    // What an older podfence pinned: same maps, a name without this ABI.
    const std::string old_dir = l.fs.path() + "/podfence/datapath-0123456789abcdef";
    std::filesystem::rename(l.dp.dir(), old_dir);
    bpf::Datapath old = bpf::Datapath::open_dir(old_dir);
    CHECK(old.abi() == 0);
    bpf::PolicyStore store(old);
    const auto before = inner_id(old, 5);
    try {
        store.replace(5, pftk::allow_tcp_from("10.251.0.2", 80));
        FAIL("replace wrote into another ABI's datapath");
    } catch (const Error& e) {
        CHECK(e.code() == Code::MapSeed);
        CHECK(std::string(e.what()).find("ABI") != std::string::npos);
    }
    CHECK(inner_id(old, 5) == before); // the old policy stays in place
    CHECK_THROWS_AS(store.read(5), Error);
    store.clear(5); // DEL still works: pods, conntrack and counters kept their layout
    CHECK(store.pod(5)->flags == 0);
}

// Ingress from `peers` distinct /32s on TCP 80: a policy of a few entries per peer.
std::vector<PolicyEntry> many_peers(int peers) {
    std::string from;
    for (int i = 0; i < peers; ++i)
        from += std::string(i ? "," : "") + R"({"ipBlock": {"cidr": "10.)" + std::to_string(i / 250) + "." +
                std::to_string(i % 250) + R"(.1/32"}})";
    return policy::compile(policy::parse_policy(R"({"policyTypes": ["Ingress"], "ingress": [{"from": [)" +
                                                from +
                                                R"(], "ports": [{"protocol": "TCP", "port": 80}]}]})"));
}

TEST_CASE("policy_store: a freed slot keeps its map, empty, and the next pod refills it in place") {
    Loaded l;
    bpf::PolicyStore store(l.dp);
    const auto a = pftk::allow_tcp_from("10.251.0.1", 8080);
    const auto rev_a = store.replace(4, a); // the node's only pod: the highest revision
    const auto id = inner_id(l.dp, 4);

    store.clear(4); // DEL: the map stays as the slot's spare, with nothing in it
    CHECK(inner_id(l.dp, 4) == id);
    UniqueFd spare(bpf_map_get_fd_by_id(id));
    REQUIRE(spare);
    CHECK(count_keys(spare.get(), sizeof(pf_policy_key)) == 0);
    CHECK(store.read(4).empty());
    CHECK(store.pod(4)->flags == 0);
    CHECK(store.revision(4) == rev_a); // kept, so revisions never repeat

    // ADD on that slot: the same map, exactly the new policy (nothing of a's
    // left), and a revision the engine's flow cache never saw for the slot.
    const auto b = pftk::allow_tcp_from("10.251.0.9", 9090);
    const auto rev = store.replace(4, b);
    CHECK(rev > rev_a);
    CHECK(inner_id(l.dp, 4) == id);
    CHECK(store.read(4) == sorted(b));
    CHECK(store.revision(4) == rev);
    store.clear(4, nullptr, bpf::PolicyStore::After::Claimed); // a DEL whose record stays
    CHECK(store.release(4));
    CHECK(store.pod(4)->flags == 0);
    CHECK(store.revision(4) == rev);

    // A policy the spare cannot hold gets a map of its own, swapped in.
    store.clear(4);
    const auto big = many_peers(300);
    REQUIRE(big.size() > 256);
    store.replace(4, big);
    const auto big_id = inner_id(l.dp, 4);
    CHECK(big_id != id);
    CHECK(store.read(4) == sorted(big));

    // A very large map is freed with its pod, not kept.
    const auto huge = many_peers(2100);
    store.replace(5, huge);
    store.clear(5);
    std::uint32_t none = 0, five = 5;
    CHECK(bpf_map_lookup_elem(l.dp.policy_map(), &five, &none) != 0);
    CHECK(store.read(5).empty());
}

TEST_CASE("policy_store: a claimed slot is never handed out until it is released") {
    Loaded l;
    bpf::PolicyStore store(l.dp);
    CHECK(store.claim_slot() == 0);
    CHECK(store.allocate_slot() == 1); // claimed, not yet active: still taken
    CHECK(store.used_slots() == std::set<std::uint32_t>{0});

    // ADD: activation keeps the claim; DEL's clear keeps it while the record names the slot.
    store.replace(0, pftk::allow_tcp_from("10.251.0.1", 8080));
    CHECK(store.pod(0)->flags == (PF_POD_ACTIVE | PF_POD_CLAIMED));
    CHECK_FALSE(store.release(0)); // active: not released
    store.clear(0, nullptr, bpf::PolicyStore::After::Claimed);
    CHECK(store.pod(0)->flags == PF_POD_CLAIMED);
    CHECK(store.allocate_slot() == 1);
    CHECK(store.release(0)); // the record is gone
    CHECK(store.pod(0)->flags == 0);
    CHECK(store.allocate_slot() == 0);
    CHECK(store.release(0)); // already free: nothing to do
}

TEST_CASE("policy_store: clear removes the slot's state and only that") {
    Loaded l;
    bpf::PolicyStore store(l.dp);
    store.replace(4, pftk::allow_tcp_from("10.251.0.1", 8080));
    store.replace(5, pftk::allow_tcp_from("10.251.0.1", 8080));

    // State the engine would have produced for both slots.
    const int ncpu = libbpf_num_possible_cpus();
    for (std::uint32_t slot : {4u, 5u}) {
        pf_ct_key ck{};
        ck.slot = slot;
        ck.family = PF_FAMILY_V4;
        ck.proto = 6;
        pf_ct_val cv{};
        cv.rev = 1;
        REQUIRE(bpf_map_update_elem(l.dp.conntrack_map(), &ck, &cv, BPF_ANY) == 0);
        pf_ct4_key ck4{};
        ck4.slot = slot;
        ck4.proto = 6;
        REQUIRE(bpf_map_update_elem(l.dp.conntrack4_map(), &ck4, &cv, BPF_ANY) == 0);
        pf_rule_key rk{slot, PF_DIR_INGRESS, 0};
        std::vector<std::uint64_t> hits(ncpu, 3);
        REQUIRE(bpf_map_update_elem(l.dp.rule_hits_map(), &rk, hits.data(), BPF_ANY) == 0);
        std::vector<pf_counter> ctr(ncpu, pf_counter{1, 2, 3, 4, 5, 6, 7, 8, 9, 0});
        std::uint32_t idx = slot * PF_NUM_DIRS + PF_DIR_EGRESS;
        REQUIRE(bpf_map_update_elem(l.dp.counters_map(), &idx, ctr.data(), BPF_ANY) == 0);
    }

    store.clear(4);
    CHECK(store.read(4).empty());
    CHECK(store.pod(4)->flags == 0);
    CHECK(store.allocate_slot() == 0);
    pf_ct_key ck{};
    ck.slot = 4;
    ck.family = PF_FAMILY_V4;
    ck.proto = 6;
    pf_ct_val cv{};
    CHECK(bpf_map_lookup_elem(l.dp.conntrack_map(), &ck, &cv) != 0);
    ck.slot = 5;
    CHECK(bpf_map_lookup_elem(l.dp.conntrack_map(), &ck, &cv) == 0);
    pf_ct4_key ck4{};
    ck4.slot = 4;
    ck4.proto = 6;
    CHECK(bpf_map_lookup_elem(l.dp.conntrack4_map(), &ck4, &cv) != 0);
    ck4.slot = 5;
    CHECK(bpf_map_lookup_elem(l.dp.conntrack4_map(), &ck4, &cv) == 0);
    CHECK(count_keys(l.dp.rule_hits_map(), sizeof(pf_rule_key)) == 1);
    std::vector<pf_counter> ctr(ncpu);
    std::uint32_t idx = 4 * PF_NUM_DIRS + PF_DIR_EGRESS;
    REQUIRE(bpf_map_lookup_elem(l.dp.counters_map(), &idx, ctr.data()) == 0);
    CHECK(std::all_of(ctr.begin(), ctr.end(), [](const pf_counter& c) { return c.denied_bytes == 0; }));
    idx = 5 * PF_NUM_DIRS + PF_DIR_EGRESS;
    REQUIRE(bpf_map_lookup_elem(l.dp.counters_map(), &idx, ctr.data()) == 0);
    CHECK(ctr[0].denied_bytes == 4);
    CHECK_FALSE(store.read(5).empty());

    store.clear(4); // already clear: no error
}

TEST_CASE("state store: dir names, create/find/update/list/remove") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::StateStore st(fs.path());
    const std::string base = fs.path() + "/podfence/attachments/";

    CHECK(st.dir_for("abc123-X_y", "eth0") == base + "abc123-X_y_eth0");
    CHECK(st.dir_for("a_b", "c") != st.dir_for("a", "b_c"));
    const std::string odd = st.dir_for("ns/pod.1", "eth0");
    CHECK(odd.find('/', base.size()) == std::string::npos);
    CHECK(odd.find('.', base.size()) == std::string::npos); // bpffs refuses dots
    CHECK(odd == st.dir_for("ns/pod.1", "eth0"));
    CHECK(st.dir_for(std::string(129, 'a'), "eth0") != st.dir_for(std::string(128, 'a'), "eth0"));
    CHECK(st.dir_for("c", "net1.5") == base + "c_net1%2E5");

    bpf::AttachmentRecord r;
    r.container_id = "ns/pod.1";
    r.ifname = "eth0";
    r.netns = "/run/netns/x";
    r.mode = bpf::AttachMode::Tcx;
    r.datapath_dir = fs.path() + "/podfence/datapath-0";
    r.host_ifname = "veth1";
    r.host_ifindex = 12;
    r.pod_ifindex = 2;
    r.slot = 42;
    r.rev = 7;
    r.policy_json = R"({"policyTypes":["Ingress"]})";
    CHECK(st.create(r) == odd);
    auto got = st.find("ns/pod.1", "eth0");
    REQUIRE(got);
    CHECK(got->slot == 42);
    CHECK(got->policy_json == r.policy_json);
    CHECK(got->datapath_dir == r.datapath_dir);
    CHECK_FALSE(st.find("ns/pod.1", "eth1"));
    CHECK_FALSE(st.find("other", "eth0"));

    r.policy_json = std::string(5000, 'x'); // a longer record than before
    r.rev = 8;
    st.update(r);
    got = st.find("ns/pod.1", "eth0");
    REQUIRE(got);
    CHECK(got->rev == 8);
    CHECK(got->policy_json.size() == 5000);

    bpf::AttachmentRecord r2 = r;
    r2.container_id = "second";
    st.create(r2);
    pftk::must("mkdir " + base + "junk"); // unreadable dirs are skipped
    auto all = st.list();
    CHECK(all.size() == 2);

    st.remove("ns/pod.1", "eth0");
    CHECK_FALSE(st.find("ns/pod.1", "eth0"));
    CHECK(pftk::sh("test -e " + odd) != 0);
    st.remove("ns/pod.1", "eth0"); // absent: no error
    CHECK(st.list().size() == 1);
}

TEST_CASE("state store: remove detaches pinned links at once") {
    Loaded l;
    pftk::Veth veth("pftk-h6", "pftk-p6");
    const int ifindex = netlink::get_link("pftk-h6")->ifindex;
    bpf::StateStore st(l.fs.path());
    bpf::AttachmentRecord r;
    r.container_id = "c6";
    r.ifname = "eth0";
    const std::string dir = st.create(r);
    {
        UniqueFd stub = bpf::load_tc_stub(l.dp, 6, PF_DIR_EGRESS);
        UniqueFd link = bpf::attach_tcx(stub.get(), ifindex, bpf::Hook::TcxIngress);
        bpf::pin(link.get(), dir + "/link_tcx_ingress");
        bpf::pin(stub.get(), dir + "/stub_tcx_ingress");
    }
    CHECK(bpf::tcx_prog_ids(ifindex, bpf::Hook::TcxIngress).size() == 1);
    st.remove("c6", "eth0");
    CHECK(bpf::tcx_prog_ids(ifindex, bpf::Hook::TcxIngress).empty()); // synchronous
    CHECK(pftk::sh("test -e " + dir) != 0);
}
