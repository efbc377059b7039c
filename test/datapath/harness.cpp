#include "datapath/harness.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

namespace pftest {

namespace {

[[noreturn]] void fail(const std::string& what, int err) {
    throw std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err));
}

void check(int rc, const std::string& what) {
    if (rc < 0) fail(what, errno ? errno : -rc);
}

} // namespace

const char* prog_name(Prog p) {
    switch (p) {
    case Prog::Tc: return "tc";
    case Prog::Xdp: return "xdp";
    case Prog::FastTc: return "fast_tc";
    case Prog::FastXdp: return "fast_xdp";
    }
    return "?";
}

Entry addr_entry(std::uint8_t dir, std::uint8_t family, const Addr& a, unsigned plen, std::uint32_t set) {
    Entry e;
    e.key.prefixlen = PF_KEY_HDR_BITS + plen;
    e.key.kind = PF_KIND_ADDR;
    e.key.dir = dir;
    e.key.family = family == 4 ? PF_FAMILY_V4 : PF_FAMILY_V6;
    std::memcpy(e.key.data, a.data(), 16);
    e.val.set = set;
    return e;
}

Entry port_entry(std::uint32_t set, int proto, int port, int port_plen, std::uint32_t rule) {
    Entry e;
    e.key.kind = PF_KIND_PORT;
    e.key.set = set;
    e.key.prefixlen = PF_KEY_HDR_BITS;
    if (proto > 0) {
        e.key.data[0] = static_cast<std::uint8_t>(proto);
        e.key.prefixlen += 8;
        if (port_plen >= 0) {
            e.key.data[1] = static_cast<std::uint8_t>(port >> 8);
            e.key.data[2] = static_cast<std::uint8_t>(port);
            e.key.prefixlen += static_cast<std::uint32_t>(port_plen);
        }
    }
    e.val.rule = rule;
    return e;
}

Harness::Harness() : attachments_([this](podfence::bpf::Map m) { return map_fd(fd_, m); }) {
    skel_ = load_skeleton(fd_);
    if (!skel_) fail("pf_datapath__open_and_load (embedded BPF object)", errno);
    ncpus_ = libbpf_num_possible_cpus();
    if (ncpus_ <= 0) fail("libbpf_num_possible_cpus", -ncpus_);
    plug_engines(true);
}

void Harness::plug_engines(bool plugged) {
    // Where the Fast* programs hand over, as Datapath pins them.
    const std::uint32_t zero = 0;
    for (auto [map, prog, name] : {std::tuple{fd_.tc_engine, fd_.tc, "pf_tc_engine"},
                                   std::tuple{fd_.xdp_engine, fd_.xdp, "pf_xdp_engine"}}) {
        if (plugged)
            check(bpf_map_update_elem(map, &zero, &prog, BPF_ANY),
                  std::string("bpf_map_update_elem(") + name + ")");
        else if (bpf_map_delete_elem(map, &zero) && errno != ENOENT)
            fail(std::string("bpf_map_delete_elem(") + name + ")", errno);
    }
}

Harness::~Harness() = default;

int Harness::prog_fd(Prog p) {
    if (p == Prog::Tc || p == Prog::Xdp) return p == Prog::Tc ? fd_.tc : fd_.xdp;
    return attachments_.get(p == Prog::FastXdp, scratch_slot_, scratch_dir_);
}

namespace {

// The pod's policy map as PolicyStore makes it (hash sized to its entries).
podfence::UniqueFd make_policy_map(const std::vector<Entry>& entries) {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    const auto max = static_cast<std::uint32_t>(std::max<std::size_t>(2 * entries.size(), 1));
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "pftd_policy", sizeof(pf_policy_key), sizeof(pf_policy_val),
                            max, &opts);
    check(fd, "bpf_map_create(policy hash)");
    podfence::UniqueFd map(fd);
    for (const auto& e : entries)
        check(bpf_map_update_elem(map.get(), &e.key, &e.val, BPF_ANY), "bpf_map_update_elem(map)");
    return map;
}

} // namespace

void Harness::set_policy(std::uint32_t slot, const std::vector<Entry>& entries) {
    podfence::UniqueFd map = make_policy_map(entries);
    std::uint32_t outer_fd = static_cast<std::uint32_t>(map.get());
    check(bpf_map_update_elem(fd_.policy, &slot, &outer_fd, BPF_ANY), "bpf_map_update_elem(pf_policy)");
    policy_maps_[slot] = std::move(map);
}

void Harness::install_all(const std::vector<Install>& items) {
    std::vector<podfence::UniqueFd> maps;
    for (const auto& it : items)
        maps.push_back(make_policy_map(podfence::policy::compile(*it.policy)));
    std::vector<int> errs(items.size(), 0);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < items.size(); ++i)
        threads.emplace_back([&, i] {
            std::uint32_t outer_fd = static_cast<std::uint32_t>(maps[i].get());
            if (bpf_map_update_elem(fd_.policy, &items[i].slot, &outer_fd, BPF_ANY) != 0) errs[i] = errno;
        });
    for (auto& t : threads)
        t.join();
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (errs[i]) fail("bpf_map_update_elem(pf_policy)", errs[i]);
        policy_maps_[items[i].slot] = std::move(maps[i]);
        set_pod(items[i].slot, items[i].rev, PF_POD_ACTIVE | src_flags_[items[i].slot]);
    }
}

void Harness::install(std::uint32_t slot, const podfence::policy::Policy& p, std::uint32_t rev) {
    set_policy(slot, podfence::policy::compile(p));
    set_pod(slot, rev, PF_POD_ACTIVE | src_flags_[slot]);
}

void Harness::remove_policy(std::uint32_t slot) {
    bpf_map_delete_elem(fd_.policy, &slot);
    policy_maps_.erase(slot);
}

int Harness::trie_fd(std::uint32_t slot) const {
    auto it = policy_maps_.find(slot);
    return it == policy_maps_.end() ? -1 : it->second.get();
}

void Harness::set_pod(std::uint32_t slot, std::uint32_t rev, std::uint32_t flags) {
    pf_pod pod{rev, flags};
    check(bpf_map_update_elem(fd_.pods, &slot, &pod, BPF_ANY), "bpf_map_update_elem(pf_pods)");
}

void Harness::set_scratch(std::uint32_t slot, std::uint32_t dir) {
    scratch_slot_ = slot;
    scratch_dir_ = dir;
    std::vector<pf_scratch> v(static_cast<std::size_t>(ncpus_), pf_scratch{slot, dir});
    std::uint32_t zero = 0;
    check(bpf_map_update_elem(fd_.scratch, &zero, v.data(), BPF_ANY), "bpf_map_update_elem(pf_scratch)");
}

void Harness::set_config(std::uint32_t flags, std::uint64_t wide_v4_until_ns) {
    pf_config c{flags, 0, wide_v4_until_ns};
    std::uint32_t zero = 0;
    check(bpf_map_update_elem(fd_.config, &zero, &c, BPF_ANY), "bpf_map_update_elem(pf_config)");
}

void Harness::set_sources(std::uint32_t slot, const podfence::policy::PodSources& s) {
    pf_src_key k{}, next{};
    std::vector<pf_src_key> mine;
    for (const void* prev = nullptr; bpf_map_get_next_key(fd_.sources, prev, &next) == 0; prev = &k) {
        if (next.slot == slot) mine.push_back(next);
        k = next;
    }
    for (const auto& m : mine)
        bpf_map_delete_elem(fd_.sources, &m);
    for (const auto& a : s.addrs) {
        pf_src_key key{};
        key.slot = slot;
        key.family = a.family;
        std::memcpy(key.addr, a.addr.data(), 16);
        const std::uint8_t one = 1;
        check(bpf_map_update_elem(fd_.sources, &key, &one, BPF_ANY), "bpf_map_update_elem(pf_sources)");
    }
    src_flags_[slot] = s.check ? PF_POD_SRC_CHECK : 0;
    pf_pod pod{};
    if (bpf_map_lookup_elem(fd_.pods, &slot, &pod) == 0)
        set_pod(slot, pod.rev, (pod.flags & ~PF_POD_SRC_CHECK) | src_flags_[slot]);
}

std::size_t Harness::sources_size() const {
    pf_src_key k{}, next{};
    std::size_t n = 0;
    for (const void* prev = nullptr; bpf_map_get_next_key(fd_.sources, prev, &next) == 0; prev = &k) {
        ++n;
        k = next;
    }
    return n;
}

RunResult Harness::run(Prog p, const std::vector<std::uint8_t>& frame, std::uint32_t repeat) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<std::uint32_t>(frame.size()), .repeat = static_cast<int>(repeat));
    check(bpf_prog_test_run_opts(prog_fd(p), &opts),
          std::string("bpf_prog_test_run_opts(pf_") + prog_name(p) + ")");
    return {static_cast<int>(opts.retval), opts.duration};
}

int Harness::allow_code(Prog p) {
    return p == Prog::Tc || p == Prog::FastTc ? TC_ACT_UNSPEC : XDP_PASS;
}
int Harness::deny_code(Prog p) {
    return p == Prog::Tc || p == Prog::FastTc ? TC_ACT_SHOT : XDP_DROP;
}

pf_counter Harness::counters(std::uint32_t slot, std::uint32_t dir) const {
    std::vector<pf_counter> v(static_cast<std::size_t>(ncpus_));
    std::uint32_t idx = slot * PF_NUM_DIRS + dir;
    check(bpf_map_lookup_elem(fd_.counters, &idx, v.data()), "bpf_map_lookup_elem(pf_counters)");
    pf_counter sum{};
    for (const auto& c : v) {
        sum.allowed_packets += c.allowed_packets;
        sum.allowed_bytes += c.allowed_bytes;
        sum.denied_packets += c.denied_packets;
        sum.denied_bytes += c.denied_bytes;
        sum.spoofed_packets += c.spoofed_packets;
        sum.spoofed_bytes += c.spoofed_bytes;
        sum.would_deny_packets += c.would_deny_packets;
        sum.would_deny_bytes += c.would_deny_bytes;
        sum.events_lost += c.events_lost;
    }
    return sum;
}

std::uint64_t Harness::rule_hits(std::uint32_t slot, std::uint32_t dir, std::uint32_t rule) const {
    std::vector<std::uint64_t> v(static_cast<std::size_t>(ncpus_));
    pf_rule_key k{slot, dir, rule};
    if (bpf_map_lookup_elem(fd_.rule_hits, &k, v.data()) != 0) return 0;
    std::uint64_t sum = 0;
    for (auto x : v)
        sum += x;
    return sum;
}

namespace {

template <typename Key> std::size_t count_keys(int fd) {
    Key k{}, next{};
    std::size_t n = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        ++n;
        k = next;
        prev = &k;
    }
    return n;
}

} // namespace

pf_ct4_key ct4_key_of(const pf_ct_key& k) {
    pf_ct4_key n{};
    n.slot = k.slot;
    n.proto = k.proto;
    n.pod_port = k.pod_port;
    n.peer_port = k.peer_port;
    std::memcpy(n.pod_addr, k.pod_addr, sizeof n.pod_addr);
    std::memcpy(n.peer_addr, k.peer_addr, sizeof n.peer_addr);
    return n;
}

FlowCacheKey flow_cache_key(const pf_ct_key& k) {
    FlowCacheKey c;
    if (k.family == PF_FAMILY_V4) {
        const pf_ct4_key n = ct4_key_of(k);
        static_assert(sizeof n % 4 == 0);
        std::memcpy(c.w, &n, sizeof n);
        c.n = sizeof n / 4;
    } else {
        static_assert(sizeof k == sizeof c.w);
        std::memcpy(c.w, &k, sizeof k);
        c.n = PF_FC_KEY_WORDS;
    }
    return c;
}

std::uint32_t flow_cache_index(const pf_ct_key& k) {
    const FlowCacheKey c = flow_cache_key(k);
    return pf_fc_index(c.w, c.n);
}

std::size_t Harness::conntrack_size() const {
    return count_keys<pf_ct4_key>(fd_.conntrack4) + count_keys<pf_ct_key>(fd_.conntrack);
}

std::optional<pf_ct_val> Harness::conntrack_find(const pf_ct_key& k) const {
    if (k.family != PF_FAMILY_V4) return wide_conntrack_find(k);
    pf_ct_val v{};
    const pf_ct4_key n = ct4_key_of(k);
    if (bpf_map_lookup_elem(fd_.conntrack4, &n, &v) != 0) return std::nullopt;
    return v;
}

void Harness::conntrack_put(const pf_ct_key& k, const pf_ct_val& v) {
    if (k.family != PF_FAMILY_V4) return wide_conntrack_put(k, v);
    const pf_ct4_key n = ct4_key_of(k);
    check(bpf_map_update_elem(fd_.conntrack4, &n, &v, BPF_ANY), "bpf_map_update_elem(pf_conntrack4)");
    flow_cache_forget(k);
}

std::optional<pf_ct_val> Harness::wide_conntrack_find(const pf_ct_key& k) const {
    pf_ct_val v{};
    if (bpf_map_lookup_elem(fd_.conntrack, &k, &v) != 0) return std::nullopt;
    return v;
}

void Harness::wide_conntrack_put(const pf_ct_key& k, const pf_ct_val& v) {
    check(bpf_map_update_elem(fd_.conntrack, &k, &v, BPF_ANY), "bpf_map_update_elem(pf_conntrack)");
    flow_cache_forget(k);
}

void Harness::conntrack_clear() {
    delete_all_keys<pf_ct4_key>(fd_.conntrack4);
    delete_all_keys<pf_ct_key>(fd_.conntrack);
    flow_cache_clear();
}

void Harness::conntrack_delete(const pf_ct_key& k, bool keep_flow_cache) {
    if (k.family != PF_FAMILY_V4) {
        bpf_map_delete_elem(fd_.conntrack, &k);
    } else {
        const pf_ct4_key n = ct4_key_of(k);
        bpf_map_delete_elem(fd_.conntrack4, &n);
    }
    if (!keep_flow_cache) flow_cache_forget(k);
}

std::vector<pf_fc_entry> Harness::flow_cache_at(std::uint32_t idx) const {
    std::vector<pf_fc_entry> per_cpu(static_cast<std::size_t>(ncpus_));
    check(bpf_map_lookup_elem(fd_.flowcache, &idx, per_cpu.data()), "bpf_map_lookup_elem(pf_flowcache)");
    return per_cpu;
}

void Harness::flow_cache_set(std::uint32_t idx, const pf_fc_entry& e) {
    const std::vector<pf_fc_entry> per_cpu(static_cast<std::size_t>(ncpus_), e);
    check(bpf_map_update_elem(fd_.flowcache, &idx, per_cpu.data(), BPF_ANY),
          "bpf_map_update_elem(pf_flowcache)");
}

void Harness::flow_cache_forget(const pf_ct_key& k) {
    flow_cache_set(flow_cache_index(k), pf_fc_entry{});
}

void Harness::flow_cache_clear() {
    zero_percpu_array<pf_fc_entry>(fd_.flowcache, PF_FC_ENTRIES);
}

void Harness::clear_slot_stats(std::uint32_t slot) {
    std::vector<pf_counter> zeros(static_cast<std::size_t>(ncpus_));
    for (std::uint32_t d = 0; d < PF_NUM_DIRS; ++d) {
        std::uint32_t idx = slot * PF_NUM_DIRS + d;
        bpf_map_update_elem(fd_.counters, &idx, zeros.data(), BPF_ANY);
    }
    int fd = fd_.rule_hits;
    pf_rule_key k{}, next{};
    std::vector<pf_rule_key> mine;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (next.slot == slot) mine.push_back(next);
        k = next;
        prev = &k;
    }
    for (const auto& r : mine)
        bpf_map_delete_elem(fd, &r);
}

std::optional<pf_frag_val> Harness::frag_find(const pf_frag_key& k) const {
    pf_frag_val v{};
    if (bpf_map_lookup_elem(fd_.frags, &k, &v) != 0) return std::nullopt;
    return v;
}

void Harness::frag_put(const pf_frag_key& k, const pf_frag_val& v) {
    check(bpf_map_update_elem(fd_.frags, &k, &v, BPF_ANY), "bpf_map_update_elem(pf_frags)");
}

void Harness::frag_delete(const pf_frag_key& k) {
    bpf_map_delete_elem(fd_.frags, &k);
}

std::size_t Harness::frag_size() const {
    return count_keys<pf_frag_key>(fd_.frags);
}

void Harness::frag_clear() {
    delete_all_keys<pf_frag_key>(fd_.frags);
}

int Harness::events_fd() const {
    return fd_.events;
}

pf_ct_key ct_key_for(std::uint32_t slot, std::uint8_t dir, const Frame& f) {
    pf_ct_key k{};
    k.slot = slot;
    k.family = f.family == 4 ? PF_FAMILY_V4 : PF_FAMILY_V6;
    k.proto = f.proto;
    std::uint16_t sport = 0, dport = 0;
    bool l4 = !f.non_first_fragment;
    if (l4 && (f.proto == kTcp || f.proto == kUdp || f.proto == kSctp)) {
        sport = f.sport;
        dport = f.dport;
    } else if (l4 && ((f.family == 4 && f.proto == kIcmp && (f.icmp_type == 8 || f.icmp_type == 0)) ||
                      (f.family == 6 && f.proto == kIcmp6 && (f.icmp_type == 128 || f.icmp_type == 129)))) {
        sport = dport = f.icmp_id;
    }
    bool to_pod = dir == PF_DIR_INGRESS;
    k.pod_port = htons(to_pod ? dport : sport);
    k.peer_port = htons(to_pod ? sport : dport);
    const Addr& pod = to_pod ? f.dst : f.src;
    const Addr& peer = to_pod ? f.src : f.dst;
    std::size_t n = f.family == 4 ? 4 : 16;
    std::memcpy(k.pod_addr, pod.data(), n);
    std::memcpy(k.peer_addr, peer.data(), n);
    return k;
}

pf_frag_key frag_key_for(std::uint32_t slot, std::uint8_t dir, const Frame& f) {
    pf_frag_key k{};
    k.slot = slot;
    k.family = f.family == 4 ? PF_FAMILY_V4 : PF_FAMILY_V6;
    // As on the wire, read into a u32 the way the datapath does.
    k.id = f.family == 4 ? htons(static_cast<std::uint16_t>(f.frag_id)) : htonl(f.frag_id);
    k.proto = f.family == 4 ? f.proto : 0;
    k.dir = dir;
    std::size_t n = f.family == 4 ? 4 : 16;
    std::memcpy(k.src, f.src.data(), n);
    std::memcpy(k.dst, f.dst.data(), n);
    return k;
}

bool allowed(Harness& h, Prog p, std::uint32_t slot, std::uint8_t dir, const Frame& f) {
    h.set_scratch(slot, dir);
    const int rc = h.run(p, build(f)).retval;
    if (rc != Harness::allow_code(p) && rc != Harness::deny_code(p))
        throw std::runtime_error(std::string(prog_name(p)) + " returned " + std::to_string(rc));
    return rc == Harness::allow_code(p);
}

std::uint64_t coarse_now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

} // namespace pftest
