// podfence_testrun_bench [--raw-stub] [--lengths L,L,...] [rules...]:
// BPF_PROG_TEST_RUN ns/packet of a pod's per-attachment program, as ADD
// loads it (the flow cache itself, the engine behind a tail call for every
// other packet; --raw-stub: the stub that only hands over, as before
// 2026-12-03 and on an older datapath), for policies of N rules (default 1
// 100 10000 100000), v4 and v6, tc and xdp, next to the seed article's single
// dport hash lookup and a plain kernel LPM trie holding the same CIDRs (tc,
// kind=lpm: allowed/denied = the established/denied packets below, one
// stateless trie lookup each). Rules are distinct random CIDRs with one TCP port each
// (ingress); their prefix lengths are random in v4 /20../32 and v6
// /48../128, or drawn from --lengths (v4 lengths; v6 uses each + 96). A
// match is a binary search over the DISTINCT lengths (bpf/podfence_abi.h),
// so --lengths keeps that depth fixed across rule counts.
// Cases: new (allowed packet of a NEW flow: conntrack miss, the ADDR and PORT
// longest-prefix matches, conntrack insert, rule hit; a TCP SYN), established
// (an ACK of a known flow: after its first run, the per-CPU flow cache's
// hit), denied (a SYN from a peer in a rule's CIDR, wrong port: both matches,
// then drop), denied_unknown_peer (peer in no rule: the address search
// misses at every length it tries).
// The kernel times `repeat` runs of one packet; a new flow can run only once
// (the next run is established), so new flows are timed one call each with
// distinct source ports (median), and established is also reported timed
// that way (established_1: each flow's first ACK right after its SYN, a
// conntrack hit that fills the flow cache).
// new: each flow to a random rule (its policy entries mostly cold in the
// caches at 10k+ rules); new_same_rule: every flow to one rule (warm).
// The loops (established, denied) run after every policy is installed, each
// pod in its own slot, in rounds that visit every rule count in turn, so a
// slow spell of the VM does not land on one rule count only.
// kind=ratio: an established case over the article's allowed packet on the
// same hook, timed next to each other in every round (per round the fastest
// of 10 alternating short loops of each), so the VM's drift between the
// phases of the run stays out of the ratio: median of the rounds, and range.
// CSV on stdout: kind,prog,family,rules,case,value,detail (value: ns/packet,
// a ratio for kind=ratio, or bytes for kind=memory: the policy map's
// memlock from /proc/self/fdinfo).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "bpf/podfence_abi.h"
#include "common/fd.hpp"
#include "support/attachments.hpp"
#include "support/frames.hpp"
#include "support/map_keys.hpp"
#include "policy/compile.hpp"
#include "policy/policy.hpp"
#include "skeletons.hpp"

namespace {

namespace pol = podfence::policy;
using pftest::Addr;
using pftest::Frame;

constexpr int kRounds = 7;
constexpr int kRepeat = 100000;
constexpr int kNewFlows = 3000;
constexpr std::uint16_t kArticlePort = 8080;
// A case paired with the article's program: per round, kPairs loops of each
// of kPairRepeat runs, alternating.
constexpr int kPairs = 10;
constexpr int kPairRepeat = 10000;

[[noreturn]] void die(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct Bench {
    pfbench::Fds fd;
    std::unique_ptr<pfbench::Skeletons, pfbench::SkeletonsDeleter> skel;
    int ncpus = libbpf_num_possible_cpus();

    Bench() {
        skel = pfbench::load(fd);
        if (!skel) die("loading the podfence and article skeletons");
    }

    // The trie the LPM baseline reads; and the pod and direction in
    // pf_scratch, as a pod's program writes them when it hands over.
    void use_slot(std::uint32_t slot, std::uint32_t dir = PF_DIR_INGRESS) const {
        std::vector<pf_scratch> sc(static_cast<std::size_t>(ncpus), pf_scratch{slot, dir});
        std::uint32_t zero = 0;
        if (bpf_map_update_elem(fd.scratch, &zero, sc.data(), BPF_ANY))
            die("bpf_map_update_elem(pf_scratch)");
        *fd.lpm_slot = slot;
    }

    // The per-attachment program of (xdp, slot, dir), as ADD loads it.
    pftest::Attachments attachments{[this](podfence::bpf::Map m) { return pfbench::map_fd(*skel, m); }};
    int attachment(bool xdp, std::uint32_t slot, std::uint32_t dir) {
        return attachments.get(xdp, slot, dir);
    }

    // Returns the kernel's mean duration per run.
    std::uint32_t run(int prog, const std::vector<std::uint8_t>& frame, int repeat,
                      int* retval = nullptr) const {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(),
                    .data_size_in = static_cast<std::uint32_t>(frame.size()), .repeat = repeat);
        if (bpf_prog_test_run_opts(prog, &o)) die("bpf_prog_test_run_opts");
        if (retval) *retval = static_cast<int>(o.retval);
        return o.duration;
    }

    void clear_conntrack() const {
        pftest::delete_all_keys<pf_ct4_key>(fd.conntrack4);
        pftest::delete_all_keys<pf_ct_key>(fd.conntrack);
        pftest::zero_percpu_array<pf_fc_entry>(fd.flowcache, PF_FC_ENTRIES);
    }
};

// Distinct random CIDRs (v4 /20../32, v6 /48../128, or `lengths`), one TCP
// port each.
pol::Policy make_policy(std::mt19937_64& rng, std::uint8_t family, std::size_t n,
                        const std::vector<unsigned>& lengths) {
    pol::Policy p;
    p.isolate_ingress = true;
    std::set<std::pair<std::array<std::uint8_t, 16>, int>> seen;
    const unsigned bits = family == PF_FAMILY_V4 ? 32 : 128;
    std::uniform_int_distribution<unsigned> len(family == PF_FAMILY_V4 ? 20 : 48, bits);
    std::uniform_int_distribution<unsigned> byte(0, 255);
    std::uniform_int_distribution<unsigned> port(1024, 65535);
    std::uniform_int_distribution<std::size_t> pick_len(0, lengths.empty() ? 0 : lengths.size() - 1);
    while (p.ingress.size() < n) {
        pol::Cidr c;
        c.family = family;
        c.prefix_len = static_cast<std::uint8_t>(
            lengths.empty() ? len(rng) : lengths[pick_len(rng)] + (family == PF_FAMILY_V4 ? 0 : 96));
        // 10.0.0.0/8 and fd00::/8 hold the rules; 11/8 and fe00::/8 stay free.
        c.addr[0] = family == PF_FAMILY_V4 ? 10 : 0xfd;
        for (unsigned i = 1; i < bits / 8; ++i)
            c.addr[i] = static_cast<std::uint8_t>(byte(rng));
        for (unsigned i = c.prefix_len; i < bits; ++i)
            c.addr[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
        if (!seen.insert({c.addr, c.prefix_len}).second) continue;
        pol::Rule r;
        r.any_peer = false;
        r.peers.push_back({c, {}});
        r.any_port = false;
        pol::PortSpec ps;
        ps.has_port = true;
        ps.port = ps.end_port = static_cast<std::uint16_t>(port(rng));
        r.ports.push_back(ps);
        p.ingress.push_back(r);
    }
    return p;
}

long memlock_of(int fd) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("memlock:", 0) == 0) return std::stol(line.substr(8));
    return -1;
}

// How many distinct prefix lengths the ingress ADDR entries use (the binary
// search over them takes about log2 of that many lookups).
unsigned addr_lengths(const std::vector<pol::PolicyEntry>& entries) {
    std::set<std::pair<std::uint8_t, std::uint32_t>> lens;
    for (const auto& e : entries)
        if (e.key.kind == PF_KIND_ADDR && e.key.dir == PF_DIR_INGRESS)
            lens.insert({e.key.family, e.key.prefixlen});
    return static_cast<unsigned>(lens.size());
}

template <typename T> T median(std::vector<T> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

// One kernel-timed loop of `repeat` runs of `frame`.
std::uint32_t loop(const Bench& b, int prog, const std::vector<std::uint8_t>& frame, int expect,
                   int repeat = kRepeat) {
    int rc = 0;
    const std::uint32_t ns = b.run(prog, frame, repeat, &rc);
    if (rc != expect) throw std::runtime_error("unexpected verdict " + std::to_string(rc));
    return ns;
}

Addr pod_address(std::uint8_t family) {
    return pftest::ip(family == PF_FAMILY_V4 ? "192.168.0.10" : "fc00::10");
}

Frame packet(std::uint8_t family, const pol::Rule& r, std::uint16_t sport, bool right_port) {
    const pol::Cidr& c = r.peers[0].cidr;
    Addr peer = c.addr;
    peer[family == PF_FAMILY_V4 ? 3 : 15] |= 1; // inside the CIDR (host bit or /32 itself)
    if (c.prefix_len == (family == PF_FAMILY_V4 ? 32 : 128)) peer = c.addr;
    Frame f;
    f.family = family;
    f.src = peer;
    f.dst = pod_address(family);
    f.sport = sport;
    f.dport = static_cast<std::uint16_t>(right_port ? r.ports[0].port : r.ports[0].port ^ 0x8000);
    f.tcp_flags = pftest::kTcpSyn;
    return f;
}

// A repeat-loop case, measured later in rounds interleaved with every other
// policy's so that drift of the VM hits all rule counts alike.
struct LoopCase {
    std::string label; // "kind,prog,family,rules,case"
    std::uint32_t slot;
    int prog;
    std::vector<std::uint8_t> frame;
    int expect;
    std::vector<std::uint32_t> ns;
    std::uint32_t dir = PF_DIR_INGRESS;
    // The article's program on the same hook, timed next to this case in
    // every round: the ratio of the two comes from one moment of the VM, so
    // its drift between phases of the run does not enter the ratio.
    int article = -1;
    std::vector<double> over_article{};
};

// The LPM baseline's trie for the same rules (cidr -> its one port), put in
// lpm_v4/lpm_v6[slot].
podfence::UniqueFd lpm_trie(const Bench& b, std::uint32_t slot, std::uint8_t family, const pol::Policy& p) {
    const bool v4 = family == PF_FAMILY_V4;
    const std::uint32_t key_size = 4 + (v4 ? 4 : 16);
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    podfence::UniqueFd trie(bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "pf_bench_lpm", key_size,
                                           sizeof(std::uint32_t),
                                           static_cast<std::uint32_t>(p.ingress.size()), &opts));
    if (!trie) die("bpf_map_create(lpm trie)");
    std::uint8_t key[20] = {};
    for (const pol::Rule& r : p.ingress) {
        const pol::Cidr& c = r.peers[0].cidr;
        const std::uint32_t plen = c.prefix_len;
        std::memcpy(key, &plen, 4);
        std::memcpy(key + 4, c.addr.data(), key_size - 4);
        const std::uint32_t port = r.ports[0].port;
        if (bpf_map_update_elem(trie.get(), key, &port, BPF_ANY)) die("bpf_map_update_elem(lpm trie)");
    }
    std::uint32_t inner = static_cast<std::uint32_t>(trie.get());
    if (bpf_map_update_elem(v4 ? b.fd.lpm_v4 : b.fd.lpm_v6, &slot, &inner, BPF_ANY))
        die("bpf_map_update_elem(lpm outer)");
    return trie;
}

// Installs a policy of n rules in `slot`, prints its memory and the
// single-run cases, and queues its loop cases.
void measure(Bench& b, std::mt19937_64& rng, std::uint32_t slot, std::uint8_t family, std::size_t n,
             const std::vector<unsigned>& lengths, std::vector<LoopCase>& loops,
             std::vector<podfence::UniqueFd>& maps) {
    const char* fam = family == PF_FAMILY_V4 ? "v4" : "v6";
    pol::Policy p = make_policy(rng, family, n, lengths);
    std::vector<pol::PolicyEntry> entries = pol::compile(p);

    // Sized as PolicyStore::replace sizes a pod's map.
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    const auto max = static_cast<std::uint32_t>(std::max<std::size_t>(2 * entries.size(), 1));
    podfence::UniqueFd trie(bpf_map_create(BPF_MAP_TYPE_HASH, "pf_bench", sizeof(pf_policy_key),
                                           sizeof(pf_policy_val), max, &opts));
    if (!trie) die("bpf_map_create(policy hash)");
    for (const auto& e : entries)
        if (bpf_map_update_elem(trie.get(), &e.key, &e.val, BPF_ANY)) die("bpf_map_update_elem(policy)");
    std::uint32_t outer = static_cast<std::uint32_t>(trie.get());
    if (bpf_map_update_elem(b.fd.policy, &slot, &outer, BPF_ANY)) die("bpf_map_update_elem(pf_policy)");
    // With the source check, as ADD sets a pod up by default: its address
    // (packet()'s destination) is its one source.
    pf_pod pod{static_cast<std::uint32_t>(n), PF_POD_ACTIVE | PF_POD_SRC_CHECK};
    if (bpf_map_update_elem(b.fd.pods, &slot, &pod, BPF_ANY)) die("bpf_map_update_elem(pf_pods)");
    pf_src_key src{};
    src.slot = slot;
    src.family = family;
    const Addr pod_addr = pod_address(family);
    std::memcpy(src.addr, pod_addr.data(), pod_addr.size());
    const std::uint8_t owned = 1;
    if (bpf_map_update_elem(b.fd.sources, &src, &owned, BPF_ANY)) die("bpf_map_update_elem(pf_sources)");
    std::printf("memory,policy,%s,%zu,memlock_bytes,%ld,%zu entries %u distinct ADDR lengths\n", fam, n,
                memlock_of(trie.get()), entries.size(), addr_lengths(entries));
    maps.push_back(std::move(trie));
    maps.push_back(lpm_trie(b, slot, family, p));
    b.use_slot(slot);

    std::uniform_int_distribution<std::size_t> pick(0, n - 1);
    for (const bool tc : {true, false}) {
        const int prog = b.attachment(!tc, slot, PF_DIR_INGRESS);
        const char* pname = tc ? "tc" : "xdp";
        const int allow = tc ? TC_ACT_UNSPEC : XDP_PASS, deny = tc ? TC_ACT_SHOT : XDP_DROP;

        // (a) new flows: one call each, distinct rules and source ports.
        b.clear_conntrack();
        std::vector<std::uint32_t> fresh, est1;
        for (int i = 0; i < kNewFlows; ++i) {
            Frame syn = packet(family, p.ingress[pick(rng)], static_cast<std::uint16_t>(1024 + i), true);
            auto frame = pftest::build(syn);
            syn.tcp_flags = pftest::kTcpAck;
            const auto ack = pftest::build(syn);
            int rc = 0;
            fresh.push_back(b.run(prog, frame, 1, &rc));
            if (rc != allow) throw std::runtime_error("new flow not allowed");
            est1.push_back(b.run(prog, ack, 1, &rc)); // the flow's next packet: established
        }
        std::printf("datapath,%s,%s,%zu,new,%u,median of %d single runs\n", pname, fam, n, median(fresh),
                    kNewFlows);
        std::printf("datapath,%s,%s,%zu,established_1,%u,median of %d single runs\n", pname, fam, n,
                    median(est1), kNewFlows);

        // (a') new flows, all to one rule: the same lookups with warm caches.
        b.clear_conntrack();
        std::vector<std::uint32_t> same;
        const pol::Rule& one = p.ingress[pick(rng)];
        for (int i = 0; i < kNewFlows; ++i) {
            auto frame = pftest::build(packet(family, one, static_cast<std::uint16_t>(1024 + i), true));
            int rc = 0;
            same.push_back(b.run(prog, frame, 1, &rc));
            if (rc != allow) throw std::runtime_error("new flow not allowed");
        }
        std::printf("datapath,%s,%s,%zu,new_same_rule,%u,median of %d single runs\n", pname, fam, n,
                    median(same), kNewFlows);
        b.clear_conntrack();

        // (b) established flow, (c) denied packet: kernel-timed loops, later.
        const std::string label = std::string(pname) + "," + fam + "," + std::to_string(n) + ",";
        // An ACK, as a connection's packets after the handshake are: the
        // loop's first run opens the flow, the others find it.
        Frame est_flow = packet(family, p.ingress[pick(rng)], 999, true);
        est_flow.tcp_flags = pftest::kTcpAck;
        auto est = pftest::build(est_flow);
        auto denied = pftest::build(packet(family, p.ingress[pick(rng)], 998, false));
        const int article = tc ? b.fd.article_tc : b.fd.article_xdp;
        loops.push_back(
            {"datapath," + label + "established", slot, prog, est, allow, {}, PF_DIR_INGRESS, article});
        // The same flow's packets from the pod: egress, through the source check.
        loops.push_back({"datapath," + label + "established_egress",
                         slot,
                         b.attachment(!tc, slot, PF_DIR_EGRESS),
                         pftest::build(pftest::reply(est_flow)),
                         allow,
                         {},
                         PF_DIR_EGRESS,
                         article});
        loops.push_back({"datapath," + label + "denied", slot, prog, denied, deny, {}});
        // A peer outside every rule (11/8, fe00::/8 hold none): the search
        // misses at every length it tries, the most a denied packet can cost.
        Frame stranger = packet(family, p.ingress[pick(rng)], 997, true);
        stranger.src = pftest::ip(family == PF_FAMILY_V4 ? "11.1.2.3" : "fe00::1:2:3");
        loops.push_back(
            {"datapath," + label + "denied_unknown_peer", slot, prog, pftest::build(stranger), deny, {}});
        if (tc) { // the same two packets through the plain LPM trie
            loops.push_back({"lpm," + label + "allowed", slot, b.fd.lpm_tc, est, TC_ACT_OK, {}});
            loops.push_back({"lpm," + label + "denied", slot, b.fd.lpm_tc, denied, TC_ACT_SHOT, {}});
        }
    }
}

// A packet the article's program allows: TCP to its one port that every
// allow list holds.
std::vector<std::uint8_t> article_frame() {
    return pftest::build(pftest::tcp4("10.1.2.3", 40000, "192.168.0.10", kArticlePort));
}

// Runs every loop case once per round, all policies interleaved; prints the
// median of the rounds and their range. A case paired with the article's
// program also prints the median and range of its per-round ratios to it
// (kind `ratio`, case `<case>_over_article`): per round, the fastest of
// kPairs short loops of each, run alternately; the article's map is filled
// as for `article_rules`.
void run_loops(Bench& b, std::vector<LoopCase>& loops, std::size_t article_rules) {
    const auto frame = article_frame();
    for (auto& c : loops) { // open the established flows (their entries stay)
        b.use_slot(c.slot, c.dir);
        b.run(c.prog, c.frame, 1);
    }
    for (int r = 0; r < kRounds; ++r)
        for (auto& c : loops) {
            b.use_slot(c.slot, c.dir);
            c.ns.push_back(loop(b, c.prog, c.frame, c.expect));
            if (c.article < 0) continue;
            // Short loops of each, alternating, and the fastest of each: a
            // stall of the VM (steal, an interrupt) lands in one short loop
            // and not in the round's ratio.
            const int pass = c.article == b.fd.article_tc ? TC_ACT_OK : XDP_PASS;
            std::uint32_t art = UINT32_MAX, own = UINT32_MAX;
            for (int k = 0; k < kPairs; ++k) {
                if (k % 2) art = std::min(art, loop(b, c.article, frame, pass, kPairRepeat));
                own = std::min(own, loop(b, c.prog, c.frame, c.expect, kPairRepeat));
                if (k % 2 == 0) art = std::min(art, loop(b, c.article, frame, pass, kPairRepeat));
            }
            c.over_article.push_back(static_cast<double>(own) / std::max<std::uint32_t>(art, 1));
        }
    for (const auto& c : loops) {
        std::printf("%s,%u,median of %d rounds of repeat %d interleaved over all rule counts "
                    "(min %u max %u)\n",
                    c.label.c_str(), median(c.ns), kRounds, kRepeat,
                    *std::min_element(c.ns.begin(), c.ns.end()), *std::max_element(c.ns.begin(), c.ns.end()));
        if (c.over_article.empty()) continue;
        const auto [lo, hi] = std::minmax_element(c.over_article.begin(), c.over_article.end());
        std::printf(
            "ratio,%s_over_article,%.3f,median of %d per-round ratios to the article's allowed packet "
            "on the same hook: fastest of %d alternating loops of repeat %d each; its map filled as "
            "for %zu rules (min %.3f max %.3f)\n",
            c.label.substr(c.label.find(',') + 1).c_str(), median(c.over_article), kRounds, kPairs,
            kPairRepeat, article_rules, *lo, *hi);
    }
}

// The article's allow list for an n-rule policy: kArticlePort and random
// others, as many as its 16-bit key allows at most.
void fill_article_ports(const Bench& b, std::mt19937_64& rng, std::size_t n) {
    std::uniform_int_distribution<unsigned> port(1, 65535);
    std::uint8_t one = 1;
    std::uint16_t allowed = kArticlePort;
    if (bpf_map_update_elem(b.fd.article_ports, &allowed, &one, BPF_ANY))
        die("bpf_map_update_elem(port_map)");
    for (std::size_t i = 1; i < std::min<std::size_t>(n, 65535); ++i) {
        std::uint16_t p = static_cast<std::uint16_t>(port(rng));
        if (bpf_map_update_elem(b.fd.article_ports, &p, &one, BPF_ANY)) die("bpf_map_update_elem(port_map)");
    }
}

void measure_article(Bench& b, std::mt19937_64& rng, std::size_t n) {
    fill_article_ports(b, rng, n);
    const auto frame = article_frame();
    for (int prog : {b.fd.article_tc, b.fd.article_xdp}) {
        const bool tc = prog == b.fd.article_tc;
        std::vector<std::uint32_t> loops;
        for (int r = 0; r < kRounds; ++r)
            loops.push_back(loop(b, prog, frame, tc ? TC_ACT_OK : XDP_PASS));
        std::printf("article,%s,v4,%zu,allowed,%u,median of %d rounds of repeat %d\n", tc ? "tc" : "xdp", n,
                    median(loops), kRounds, kRepeat);
        std::vector<std::uint32_t> single;
        for (int i = 0; i < kNewFlows; ++i)
            single.push_back(b.run(prog, frame, 1));
        std::printf("article,%s,v4,%zu,allowed_1,%u,median of %d single runs\n", tc ? "tc" : "xdp", n,
                    median(single), kNewFlows);
    }
    std::uint16_t k = 0, next = 0;
    while (bpf_map_get_next_key(b.fd.article_ports, nullptr, &next) == 0) {
        k = next;
        if (bpf_map_delete_elem(b.fd.article_ports, &k)) die("bpf_map_delete_elem(port_map)");
    }
}

} // namespace

int main(int argc, char** argv) try {
    std::vector<std::size_t> sizes;
    std::vector<unsigned> lengths;
    bool raw_stub = false;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--raw-stub") {
            raw_stub = true;
            continue;
        }
        if (std::string(argv[i]) == "--lengths" && i + 1 < argc) {
            for (const char* c = argv[++i]; *c;) {
                char* end = nullptr;
                const unsigned long l = std::strtoul(c, &end, 10);
                if (end == c || l > 32)
                    throw std::runtime_error("--lengths: v4 prefix lengths 0..32, comma separated");
                lengths.push_back(static_cast<unsigned>(l));
                c = *end == ',' ? end + 1 : end;
            }
            continue;
        }
        sizes.push_back(std::strtoul(argv[i], nullptr, 10));
    }
    if (sizes.empty()) sizes = {1, 100, 10000, 100000};
    // One CPU for the whole run: single-run timings otherwise differ by which
    // of the CPUs (with its own caches and interrupt load) a call lands on.
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(std::max(sched_getcpu(), 0), &one);
    if (sched_setaffinity(0, sizeof(one), &one)) die("sched_setaffinity");
    Bench b;
    b.attachments.use_raw_stubs(raw_stub);
    std::mt19937_64 rng(42);
    std::printf("kind,prog,family,rules,case,value,detail\n");
    std::vector<LoopCase> loops;
    std::vector<podfence::UniqueFd> maps; // every policy stays installed for the loops
    std::uint32_t slot = 1;
    for (std::size_t n : sizes) {
        measure_article(b, rng, n);
        for (std::uint8_t fam : {std::uint8_t{PF_FAMILY_V4}, std::uint8_t{PF_FAMILY_V6}})
            measure(b, rng, slot++, fam, n, lengths, loops, maps);
        std::fflush(stdout);
    }
    // The article's map for the rounds: as for the largest rule count.
    const std::size_t most = *std::max_element(sizes.begin(), sizes.end());
    fill_article_ports(b, rng, most);
    run_loops(b, loops, most);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "podfence_testrun_bench: %s\n", e.what());
    return 1;
}
