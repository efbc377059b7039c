// Loads the datapath skeleton unpinned and drives pf_tc / pf_xdp through
// BPF_PROG_TEST_RUN with the state a test sets up (policy tries, pod records,
// the stub's scratch, config), then reads back conntrack and counters. The
// Fast* programs are the per-attachment program a pod's hook runs
// (bpf/fastpath.bpf.c): the flow cache itself, the engine for the rest.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "bpf/podfence_abi.h"
#include "common/fd.hpp"
#include "support/attachments.hpp"
#include "support/frames.hpp"
#include "support/map_keys.hpp"
#include "datapath/skel_loader.hpp"
#include "policy/compile.hpp"
#include "policy/length_search.hpp"
#include "policy/sources.hpp"

namespace pftest {

// Fast*: the per-attachment program for the slot and direction of the last
// set_scratch(), loaded on first use, handing over to pf_tc / pf_xdp.
enum class Prog { Tc, Xdp, FastTc, FastXdp };
const char* prog_name(Prog p);

// Hand-written policy entries (see the two longest-prefix matches in
// podfence_abi.h); policy::with_search() adds what the engine's search needs.
using Entry = podfence::policy::PolicyEntry;
Entry addr_entry(std::uint8_t dir, std::uint8_t family, const Addr& a, unsigned plen, std::uint32_t set);
// proto 0 with plen 0: any protocol; port_plen < 0: any port of proto.
Entry port_entry(std::uint32_t set, int proto, int port, int port_plen, std::uint32_t rule);
struct RunResult {
    int retval = 0;
    std::uint32_t duration_ns = 0;
};

class Harness {
public:
    Harness(); // pf_datapath__open_and_load; throws std::runtime_error naming the call
    ~Harness();
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;

    int prog_fd(Prog p);

    // New policy map holding exactly `entries`, swapped into pf_policy[slot].
    void set_policy(std::uint32_t slot, const std::vector<Entry>& entries);
    // compile()s the policy, installs it and marks the slot active at `rev`.
    void install(std::uint32_t slot, const podfence::policy::Policy& p, std::uint32_t rev);
    // The same for many slots at once. Each pf_policy update waits for an RCU
    // grace period (the kernel's maybe_wait_bpf_programs for map-in-map,
    // ~15 ms here): the updates run in parallel threads so they share one.
    struct Install {
        std::uint32_t slot;
        const podfence::policy::Policy* policy;
        std::uint32_t rev;
    };
    void install_all(const std::vector<Install>& items);
    void remove_policy(std::uint32_t slot);
    int trie_fd(std::uint32_t slot) const; // last trie this harness installed
    void set_pod(std::uint32_t slot, std::uint32_t rev, std::uint32_t flags = PF_POD_ACTIVE);
    void set_scratch(std::uint32_t slot, std::uint32_t dir); // every possible CPU
    // wide_v4_until_ns: pf_config's window for adopting IPv4 flows of an
    // older datapath from pf_conntrack (0: closed).
    void set_config(std::uint32_t flags, std::uint64_t wide_v4_until_ns = 0);
    // The source check of `slot`: pf_sources entries replaced by s.addrs, and
    // PF_POD_SRC_CHECK = s.check in pf_pods now and in every later install().
    void set_sources(std::uint32_t slot, const podfence::policy::PodSources& s);

    RunResult run(Prog p, const std::vector<std::uint8_t>& frame, std::uint32_t repeat = 1);
    // The allow/deny return code of each program type.
    static int allow_code(Prog p);
    static int deny_code(Prog p);

    pf_counter counters(std::uint32_t slot, std::uint32_t dir) const; // summed over CPUs
    std::uint64_t rule_hits(std::uint32_t slot, std::uint32_t dir, std::uint32_t rule) const;
    // Conntrack by the wide key: its family picks the table, IPv4 flows in
    // pf_conntrack4 (by the narrow key), IPv6 ones in pf_conntrack. Writes
    // also drop the flow's cached copy (unless told to keep it): they stand
    // for time passing or for another writer, which that copy (at most
    // PF_FC_TTL_JIFFIES old in the datapath) would hide from the next packet.
    std::size_t conntrack_size() const; // both tables
    std::size_t sources_size() const;   // pf_sources entries, every slot
    std::optional<pf_ct_val> conntrack_find(const pf_ct_key& k) const;
    void conntrack_put(const pf_ct_key& k, const pf_ct_val& v);
    void conntrack_clear(); // both tables
    void conntrack_delete(const pf_ct_key& k, bool keep_flow_cache = false);
    // pf_conntrack itself, whatever the family: where a datapath before ABI
    // 6 kept IPv4 flows.
    std::optional<pf_ct_val> wide_conntrack_find(const pf_ct_key& k) const;
    void wide_conntrack_put(const pf_ct_key& k, const pf_ct_val& v);
    void clear_slot_stats(std::uint32_t slot);
    // pf_flowcache: entry `idx` on every possible CPU; set writes it to all.
    std::vector<pf_fc_entry> flow_cache_at(std::uint32_t idx) const;
    void flow_cache_set(std::uint32_t idx, const pf_fc_entry& e);
    void flow_cache_clear();
    void flow_cache_forget(const pf_ct_key& k); // the entry k's flow may hold, every CPU
    // pf_frags: datagrams whose first fragment passed.
    std::optional<pf_frag_val> frag_find(const pf_frag_key& k) const;
    void frag_put(const pf_frag_key& k, const pf_frag_val& v);
    void frag_delete(const pf_frag_key& k);
    std::size_t frag_size() const;
    void frag_clear();
    int events_fd() const;
    // Whether the Fast* programs find an engine to hand over to (pf_tc_engine,
    // pf_xdp_engine); unplugged, a packet they do not serve is dropped.
    void plug_engines(bool plugged);

    int ncpus() const { return ncpus_; }

private:
    SkelPtr skel_;
    SkelFds fd_;
    int ncpus_ = 0;
    std::uint32_t scratch_slot_ = 0, scratch_dir_ = 0; // the last set_scratch()
    Attachments attachments_;                          // the Fast* programs
    std::map<std::uint32_t, podfence::UniqueFd> policy_maps_;
    std::map<std::uint32_t, std::uint32_t> src_flags_; // slot -> PF_POD_SRC_CHECK or 0
};

// Runs `f` through `p` as pod `slot`'s direction `dir`: true when allowed,
// false when dropped; throws on any other return code.
bool allowed(Harness& h, Prog p, std::uint32_t slot, std::uint8_t dir, const Frame& f);

// CLOCK_MONOTONIC_COARSE in ns: the clock of the datapath's conntrack stamps.
std::uint64_t coarse_now_ns();

// The pf_conntrack4 key of an IPv4 flow's wide key.
pf_ct4_key ct4_key_of(const pf_ct_key& k);
// The words the engine's flow cache hashes and compares for a flow (the
// narrow key for IPv4, the wide one for IPv6), and the entry they pick.
struct FlowCacheKey {
    pf_u32 w[PF_FC_KEY_WORDS] = {};
    unsigned n = 0;
};
FlowCacheKey flow_cache_key(const pf_ct_key& k);
std::uint32_t flow_cache_index(const pf_ct_key& k);
// Conntrack key the datapath builds for frame `f` seen in direction `dir`
// (the wide one; ct4_key_of narrows an IPv4 one).
pf_ct_key ct_key_for(std::uint32_t slot, std::uint8_t dir, const Frame& f);
// pf_frags key the datapath builds for fragment `f` seen in direction `dir`.
pf_frag_key frag_key_for(std::uint32_t slot, std::uint8_t dir, const Frame& f);

} // namespace pftest
