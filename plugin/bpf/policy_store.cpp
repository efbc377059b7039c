// Per-pod policy maps (hash, ABI 2) in the pf_policy map-in-map, and the
// per-slot state around them (pf_pods, counters, rule hits, conntrack).
#include "policy_store.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.hpp"
#include "common/log.hpp"
#include "util.hpp"

namespace podfence::bpf {

using policy::PolicyEntry;

namespace {

std::string slot_name(std::uint32_t slot) {
    return "slot " + std::to_string(slot);
}

void check_slot(std::uint32_t slot) {
    if (slot >= PF_MAX_SLOTS)
        throw Error(Code::MapSeed, "slot " + std::to_string(slot) + " out of range (max " +
                                       std::to_string(PF_MAX_SLOTS - 1) + ")");
}

// Type, flags, key and value sizes must equal pf_policy_inner in
// bpf/maps.h, or the outer update is refused; max_entries may differ for a
// hash. A hash allocates roundup_pow_of_two(max_entries) buckets of 16 bytes
// up front; twice the entries keeps chains short for the engine's many
// missing lookups (one per prefix length tried). At least kInnerMinEntries:
// the map outlives its pod as the slot's spare (clear()), and a spare the
// next pod's policy fits saves that pod's ADD an RCU grace period.
constexpr std::uint32_t kInnerMinEntries = 256;
// clear() keeps a slot's map (emptied) up to this size (64 KiB of buckets);
// a larger one is freed with the pod.
constexpr std::uint32_t kSpareMaxEntries = 4096;

UniqueFd create_inner(std::uint32_t slot, std::size_t entries) {
    if (entries > PF_POLICY_MAX_ENTRIES)
        throw Error(Code::MapSeed, "policy of slot " + std::to_string(slot) + " has " +
                                       std::to_string(entries) + " entries, more than the per-pod capacity " +
                                       std::to_string(PF_POLICY_MAX_ENTRIES) + "; simplify the policy");
    LIBBPF_OPTS(bpf_map_create_opts, opts);
    opts.map_flags = BPF_F_NO_PREALLOC;
    std::string name = "pf_pod_" + std::to_string(slot);
    const auto max = static_cast<std::uint32_t>(std::max<std::size_t>(2 * entries, kInnerMinEntries));
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, name.c_str(), sizeof(pf_policy_key), sizeof(pf_policy_val),
                            max, &opts);
    if (fd < 0)
        throw errno_error(Code::MapSeed, "bpf_map_create",
                          "policy hash " + name + " (max_entries " + std::to_string(max) + ")", errno);
    return UniqueFd(fd);
}

// The map in pf_policy[slot]; an empty UniqueFd when the slot has none.
UniqueFd open_inner(int outer, std::uint32_t slot) {
    std::uint32_t id = 0;
    // From userspace, a map-in-map lookup yields the inner map's id.
    if (bpf_map_lookup_elem(outer, &slot, &id) != 0) {
        if (errno == ENOENT) return UniqueFd();
        throw errno_error(Code::MapSeed, "bpf_map_lookup_elem", "pf_policy[" + std::to_string(slot) + "]",
                          errno);
    }
    UniqueFd inner(bpf_map_get_fd_by_id(id));
    if (!inner && errno != ENOENT) // ENOENT: replaced and freed meanwhile
        throw errno_error(Code::MapSeed, "bpf_map_get_fd_by_id",
                          "inner map id " + std::to_string(id) + " of " + slot_name(slot), errno);
    return inner;
}

std::uint32_t max_entries(int fd) {
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        throw errno_error(Code::MapSeed, "bpf_obj_get_info_by_fd", "policy map", errno);
    return info.max_entries;
}

// The largest prefixlen a key of this kind can have; 0 for unknown kinds.
std::uint32_t max_prefixlen(const pf_policy_key& k) {
    switch (k.kind) {
    case PF_KIND_ADDR:
        return PF_KEY_HDR_BITS + (k.family == PF_FAMILY_V4 ? 32 : k.family == PF_FAMILY_V6 ? 128 : 0);
    case PF_KIND_PORT: return PF_KEY_HDR_BITS + PF_PORT_KEY_BITS;
    case PF_KIND_ADDR_ROOT: return PF_ROOT_PREFIXLEN;
    case PF_KIND_PORT_ROOT: return PF_ROOT_PREFIXLEN;
    default: return 0;
    }
}

// A hash accepts any key, where the LPM trie of ABI 1 refused impossible
// prefix lengths: refuse them here so a broken entry fails the replace
// instead of silently never matching.
void validate(std::uint32_t slot, const std::vector<PolicyEntry>& entries) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const pf_policy_key& k = entries[i].key;
        if (k.prefixlen >= PF_KEY_HDR_BITS && k.prefixlen <= max_prefixlen(k)) continue;
        throw Error(Code::MapSeed, "pf_pod_" + std::to_string(slot) + " entry " + std::to_string(i) +
                                       ": prefixlen " + std::to_string(k.prefixlen) + " invalid for kind " +
                                       std::to_string(k.kind) + " family " + std::to_string(k.family) +
                                       " (bpf/podfence_abi.h ABI " + std::to_string(PF_ABI_VERSION) + ")");
    }
}

void fill(int fd, std::uint32_t slot, const std::vector<PolicyEntry>& entries) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (bpf_map_update_elem(fd, &entries[i].key, &entries[i].val, BPF_ANY) == 0) continue;
        int e = errno;
        std::string msg = failed("bpf_map_update_elem",
                                 "pf_pod_" + std::to_string(slot) + " entry " + std::to_string(i), e);
        if (e == E2BIG || e == ENOMEM || e == ENOSPC)
            msg += ": only " + std::to_string(i) + " of " + std::to_string(entries.size()) +
                   " policy entries fit (memory limit or map size); simplify the policy";
        throw Error(Code::MapSeed, msg);
    }
}

// One BPF_MAP_LOOKUP_BATCH instead of a lookup per slot (per-slot syscalls
// dominated ADD's cost). Still about 1 ms for PF_MAX_SLOTS entries (the
// kernel copies each key and value out on its own): PolicyStore::pods()
// reads it once per store.
std::vector<pf_pod> read_pods(int pods_fd) {
    std::vector<pf_pod> pods(PF_MAX_SLOTS);
    std::vector<std::uint32_t> keys(PF_MAX_SLOTS);
    std::uint32_t out_batch = 0;
    std::uint32_t count = PF_MAX_SLOTS;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(pods_fd, nullptr, &out_batch, keys.data(), pods.data(), &count, &opts);
    if ((err != 0 && errno != ENOENT) || count != PF_MAX_SLOTS)
        throw errno_error(Code::MapSeed, "bpf_map_lookup_batch", "pf_pods", errno);
    return pods;
}

// Deletes the keys of a hash map that `doomed` selects, read in batches (a
// busy node's conntrack holds up to PF_CT_MAX_ENTRIES entries, a syscall per
// key would make DEL slow), then deleted in one batch.
template <typename Key, typename Pred>
void delete_keys_if(int fd, std::size_t value_size, const char* map, Pred doomed_key) {
    constexpr std::uint32_t kChunk = 4096;
    std::vector<Key> keys(kChunk), doomed;
    std::vector<std::uint8_t> values(kChunk * value_size);
    // Room for any hash map's batch cursor (the kernel uses the bucket index).
    std::uint32_t batch[2] = {0, 0};
    const std::uint32_t* in = nullptr;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (int i = 0;; i ^= 1) {
        std::uint32_t count = kChunk;
        int err = bpf_map_lookup_batch(fd, const_cast<std::uint32_t*>(in), &batch[i], keys.data(),
                                       values.data(), &count, &opts);
        if (err != 0 && errno != ENOENT) throw errno_error(Code::MapSeed, "bpf_map_lookup_batch", map, errno);
        for (std::uint32_t k = 0; k < count; ++k)
            if (doomed_key(keys[k])) doomed.push_back(keys[k]);
        if (err != 0) break; // ENOENT: that was the last batch
        in = &batch[i];
    }
    if (doomed.empty()) return;
    auto n = static_cast<std::uint32_t>(doomed.size());
    // Entries may expire (LRU) between the walk and here: ENOENT is fine.
    if (bpf_map_delete_batch(fd, doomed.data(), &n, &opts) != 0 && errno != ENOENT) {
        for (const Key& k : doomed)
            if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT)
                throw errno_error(Code::MapSeed, "bpf_map_delete_elem", map, errno);
    }
}

// Keys of a hash map whose key starts with a u32 slot equal to `slot`.
template <typename Key>
void delete_slot_keys(int fd, std::uint32_t slot, std::size_t value_size, const char* map) {
    static_assert(offsetof(Key, slot) == 0);
    delete_keys_if<Key>(fd, value_size, map, [slot](const Key& k) { return k.slot == slot; });
}

// Every entry of a policy map: a spare before it is refilled or kept.
void empty_inner(int fd) {
    delete_keys_if<pf_policy_key>(fd, sizeof(pf_policy_val), "policy map",
                                  [](const pf_policy_key&) { return true; });
}

// Entries compiled by this binary mean something only to a datapath that
// reads the same policy-map layout. A pod attached by an older podfence stays
// on that binary's datapath (DEL still clears it: pods, conntrack and
// counters did not change layout).
void require_same_abi(const Datapath& dp) {
    if (dp.abi() == PF_ABI_VERSION) return;
    const std::string theirs = dp.abi() == 0 ? "an ABI before 3" : "ABI " + std::to_string(dp.abi());
    throw Error(Code::MapSeed,
                "datapath " + dp.dir() + " reads policy maps of " + theirs + ", this podfence writes ABI " +
                    std::to_string(PF_ABI_VERSION) +
                    ": a pod attached by another podfence version keeps its policy until it is "
                    "re-created (its new ADD attaches it to this binary's datapath)");
}

// Revision: max over all slots + 1. It has to differ from every revision
// this slot's conntrack entries and the engine's flow cache (pf_flowcache,
// a second old at most) can carry; max+1 is strictly greater than the
// slot's current one, needs no extra state outside the ABI's maps, and is
// unique node-wide because callers hold the NodeLock. A freed slot keeps its
// revision (clear, release) so the max never goes back: a pod that reuses a slot
// does not get its predecessor's revision. (A clock would repeat within its
// resolution or wrap within weeks.)
std::uint32_t next_rev(const std::vector<pf_pod>& pods, std::uint32_t min_rev) {
    std::uint32_t rev = min_rev;
    for (const pf_pod& p : pods)
        rev = std::max(rev, p.rev);
    if (++rev == 0) rev = 1; // wrapped after 4 billion replaces: 0 means "never set"
    return rev;
}

void put_pod(int fd, std::uint32_t slot, const pf_pod& pod) {
    if (bpf_map_update_elem(fd, &slot, &pod, BPF_ANY) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_update_elem", "pf_pods[" + std::to_string(slot) + "]",
                          errno);
}

} // namespace

const std::vector<pf_pod>& PolicyStore::pods() const {
    if (!pods_) pods_ = read_pods(dp_.pods_map());
    return *pods_;
}

pf_pod PolicyStore::current(std::uint32_t slot) const {
    return pods_ ? (*pods_)[slot] : pod(slot).value_or(pf_pod{});
}

void PolicyStore::put(std::uint32_t slot, const pf_pod& pod) {
    put_pod(dp_.pods_map(), slot, pod);
    if (pods_) (*pods_)[slot] = pod;
}

// pf_pods[slot] from `was` to `now`. The engine reads rev and flags as two
// words while this update may land between them. Leaving audit therefore
// takes two writes, the flag first at the old revision: no packet can see
// the new revision with PF_POD_AUDIT still set and stamp a would-deny flow
// as valid under it. Every other mix only delays or repeats a revalidation.
void PolicyStore::write(std::uint32_t slot, const pf_pod& was, const pf_pod& now) {
    if ((was.flags & PF_POD_AUDIT) && !(now.flags & PF_POD_AUDIT) && was.rev != 0)
        put(slot, pf_pod{was.rev, now.flags});
    put(slot, now);
}

std::uint32_t PolicyStore::set_audit(std::uint32_t slot, bool audit) {
    check_slot(slot);
    const pf_pod was = pods()[slot];
    if (!(was.flags & PF_POD_ACTIVE))
        throw Error(Code::MapSeed, "pf_pods[" + std::to_string(slot) + "] is not active: no pod to switch");
    if (((was.flags & PF_POD_AUDIT) != 0) == audit) return was.rev;
    const pf_pod now{next_rev(pods(), 0), audit ? (was.flags | PF_POD_AUDIT) : (was.flags & ~PF_POD_AUDIT)};
    write(slot, was, now);
    log::debug(slot_name(slot) + (audit ? " audits" : " enforces") + ", rev " + std::to_string(now.rev));
    return now.rev;
}

std::uint32_t PolicyStore::replace(std::uint32_t slot, const std::vector<PolicyEntry>& entries,
                                   std::uint32_t min_rev, std::optional<bool> audit) {
    check_slot(slot);
    require_same_abi(dp_);
    validate(slot, entries);
    const pf_pod was = pods()[slot];
    const std::uint32_t rev = next_rev(pods(), min_rev);

    // An inactive slot (ADD, a pod moving in) whose spare map is large enough
    // is refilled in place: the engine reads no policy of an inactive slot,
    // and writes to an inner map wait for no RCU grace period, where the
    // pf_policy update does (../FIELD-NOTES). A live pod's policy is always
    // built aside and swapped in one update: no packet sees half of it.
    UniqueFd inner;
    if (!(was.flags & PF_POD_ACTIVE)) {
        inner = open_inner(dp_.policy_map(), slot);
        if (inner && max_entries(inner.get()) < entries.size()) inner.reset();
    }
    const bool refill = static_cast<bool>(inner);
    if (refill) {
        empty_inner(inner.get()); // a crashed verb's leftovers, if any
    } else {
        inner = create_inner(slot, entries.size());
    }
    fill(inner.get(), slot, entries);

    std::uint32_t inner_fd = static_cast<std::uint32_t>(inner.get());
    if (!refill && bpf_map_update_elem(dp_.policy_map(), &slot, &inner_fd, BPF_ANY) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_update_elem", "pf_policy[" + std::to_string(slot) + "]",
                          errno);
    const bool audits = audit.value_or((was.flags & PF_POD_AUDIT) != 0);
    // Activation and mode in one write: an ADD's pod is never briefly in the other mode.
    const pf_pod pod{rev, PF_POD_ACTIVE | (was.flags & (PF_POD_SRC_CHECK | PF_POD_CLAIMED)) |
                              (audits ? PF_POD_AUDIT : 0u)};
    write(slot, was, pod);
    log::debug("policy of " + slot_name(slot) + (refill ? " refilled: " : " replaced: ") +
               std::to_string(entries.size()) + " entries, rev " + std::to_string(rev));
    return rev;
}

std::vector<PolicyEntry> PolicyStore::read(std::uint32_t slot) const {
    check_slot(slot);
    require_same_abi(dp_);
    std::vector<PolicyEntry> out;
    UniqueFd inner = open_inner(dp_.policy_map(), slot);
    if (!inner) return out;
    pf_policy_key cur{}, next{};
    const pf_policy_key* prev = nullptr;
    for (;;) {
        if (bpf_map_get_next_key(inner.get(), prev, &next) != 0) {
            if (errno == ENOENT) break;
            throw errno_error(Code::MapSeed, "bpf_map_get_next_key", "policy map of " + slot_name(slot),
                              errno);
        }
        PolicyEntry e;
        e.key = next;
        // A live pod's map is never modified (replace() swaps in a new one);
        // only an inactive slot's spare is emptied and refilled meanwhile.
        if (bpf_map_lookup_elem(inner.get(), &next, &e.val) != 0) {
            if (errno == ENOENT) break;
            throw errno_error(Code::MapSeed, "bpf_map_lookup_elem", "policy map of " + slot_name(slot),
                              errno);
        }
        out.push_back(e);
        cur = next;
        prev = &cur;
    }
    std::sort(out.begin(), out.end()); // compile()'s order (policy::operator<)
    return out;
}

namespace {

bool same_map(int a, int b) {
    if (a < 0 || b < 0) return false;
    bpf_map_info ia{}, ib{};
    std::uint32_t la = sizeof ia, lb = sizeof ib;
    return bpf_obj_get_info_by_fd(a, &ia, &la) == 0 && bpf_obj_get_info_by_fd(b, &ib, &lb) == 0 &&
           ia.id == ib.id;
}

} // namespace

void PolicyStore::clear(std::uint32_t slot, const Datapath* moved_to, After after) {
    check_slot(slot);
    // Inactive first: from here on the engine denies the slot before it reads
    // a policy, so no new conntrack entries appear for it while we sweep.
    // Claimed until the sweep is done, whatever `after` says: a verb killed
    // mid-way leaves an inactive used slot, which the next verb's
    // release_unreferenced_slots() clears again, never a free slot with
    // another pod's entries (set_sources() relies on that). The revision
    // stays (next_rev).
    const std::uint32_t rev = revision(slot);
    put(slot, pf_pod{rev, PF_POD_CLAIMED});
    // The policy map stays, emptied, as the slot's spare (see replace()),
    // unless it is large or of another datapath's layout.
    UniqueFd inner = open_inner(dp_.policy_map(), slot);
    if (inner && dp_.abi() == PF_ABI_VERSION && max_entries(inner.get()) <= kSpareMaxEntries) {
        empty_inner(inner.get());
    } else if (inner && bpf_map_delete_elem(dp_.policy_map(), &slot) != 0 && errno != ENOENT) {
        throw errno_error(Code::MapSeed, "bpf_map_delete_elem", "pf_policy[" + std::to_string(slot) + "]",
                          errno);
    }

    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) throw errno_error(Code::MapSeed, "libbpf_num_possible_cpus", "", ncpu);
    std::vector<pf_counter> zeros(static_cast<std::size_t>(ncpu));
    for (std::uint32_t dir = 0; dir < PF_NUM_DIRS; ++dir) {
        std::uint32_t idx = slot * PF_NUM_DIRS + dir;
        if (bpf_map_update_elem(dp_.counters_map(), &idx, zeros.data(), BPF_ANY) != 0)
            throw errno_error(Code::MapSeed, "bpf_map_update_elem",
                              "pf_counters[" + std::to_string(idx) + "]", errno);
    }
    // Per-CPU values come as one 8-byte-aligned slot per possible CPU.
    delete_slot_keys<pf_rule_key>(dp_.rule_hits_map(), slot,
                                  sizeof(std::uint64_t) * static_cast<std::size_t>(ncpu), "pf_rule_hits");
    // A pod that moved to a datapath sharing these maps keeps its flows there.
    auto shared = [&](Map m) { return moved_to && same_map(dp_.map(m), moved_to->map(m)); };
    if (!shared(Map::Conntrack))
        delete_slot_keys<pf_ct_key>(dp_.conntrack_map(), slot, sizeof(pf_ct_val), "pf_conntrack");
    if (dp_.conntrack4_map() >= 0 && !shared(Map::Conntrack4))
        delete_slot_keys<pf_ct4_key>(dp_.conntrack4_map(), slot, sizeof(pf_ct_val), "pf_conntrack4");
    if (dp_.sources_map() >= 0)
        delete_slot_keys<pf_src_key>(dp_.sources_map(), slot, sizeof(std::uint8_t), "pf_sources");
    // A new pod on this slot must not inherit admitted datagrams.
    if (dp_.frags_map() >= 0 && !shared(Map::Frags))
        delete_slot_keys<pf_frag_key>(dp_.frags_map(), slot, sizeof(pf_frag_val), "pf_frags");
    if (after == After::Free) put(slot, pf_pod{rev, 0});
}

std::size_t PolicyStore::drop_stray_sources() {
    if (dp_.sources_map() < 0) return 0;
    const std::vector<pf_pod>& pods = this->pods();
    std::size_t n = 0;
    delete_keys_if<pf_src_key>(dp_.sources_map(), sizeof(std::uint8_t), "pf_sources",
                               [&](const pf_src_key& k) {
                                   const bool stray = k.slot >= PF_MAX_SLOTS || pods[k.slot].flags == 0;
                                   n += stray;
                                   return stray;
                               });
    return n;
}

void PolicyStore::require_source_capacity(std::size_t addresses, const std::string& ifname) {
    if (addresses <= PF_POD_MAX_SOURCES) return;
    throw Error(Code::MapSeed, "source check: " + ifname + " has " + std::to_string(addresses) +
                                   " addresses in prevResult, more than the limit of " +
                                   std::to_string(PF_POD_MAX_SOURCES) +
                                   " per pod interface (set sourceCheck: false for this network)");
}

void PolicyStore::set_sources(std::uint32_t slot, const policy::PodSources& sources) {
    check_slot(slot);
    require_same_abi(dp_);
    require_source_capacity(sources.addrs.size(), slot_name(slot));
    // No search for another pod's entries on this slot: a slot is freed only
    // once clear() has deleted them (see there), and ADD and a move write
    // sources only to the slot they just claimed. Walking the whole map here
    // made every ADD grow with the pods on the node.
    for (const policy::SourceAddr& a : sources.addrs) {
        pf_src_key k{};
        k.slot = slot;
        k.family = a.family;
        std::memcpy(k.addr, a.addr.data(), sizeof k.addr);
        const std::uint8_t one = 1;
        if (bpf_map_update_elem(dp_.sources_map(), &k, &one, BPF_ANY) != 0)
            throw errno_error(Code::MapSeed, "bpf_map_update_elem",
                              "pf_sources[" + slot_name(slot) + " " + policy::format_source(a) + "]", errno);
    }
    pf_pod pod = current(slot);
    pod.flags = sources.check ? (pod.flags | PF_POD_SRC_CHECK) : (pod.flags & ~PF_POD_SRC_CHECK);
    put(slot, pod);
}

policy::PodSources PolicyStore::read_sources(std::uint32_t slot) const {
    check_slot(slot);
    policy::PodSources out;
    pf_pod pod{};
    if (bpf_map_lookup_elem(dp_.pods_map(), &slot, &pod) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_lookup_elem", "pf_pods[" + std::to_string(slot) + "]",
                          errno);
    out.check = (pod.flags & PF_POD_SRC_CHECK) != 0;
    if (dp_.sources_map() < 0) return out;
    pf_src_key cur{}, next{};
    const pf_src_key* prev = nullptr;
    while (bpf_map_get_next_key(dp_.sources_map(), prev, &next) == 0) {
        cur = next;
        prev = &cur;
        if (cur.slot != slot) continue;
        policy::SourceAddr a;
        a.family = cur.family;
        std::memcpy(a.addr.data(), cur.addr, sizeof cur.addr);
        out.addrs.push_back(a);
    }
    if (errno != ENOENT) throw errno_error(Code::MapSeed, "bpf_map_get_next_key", "pf_sources", errno);
    std::sort(out.addrs.begin(), out.addrs.end());
    return out;
}

std::uint32_t PolicyStore::allocate_slot(const std::set<std::uint32_t>& also_taken) const {
    const std::vector<pf_pod>& pods = this->pods();
    for (std::uint32_t s = 0; s < PF_MAX_SLOTS; ++s)
        if (pods[s].flags == 0 && !also_taken.count(s)) return s;
    throw Error(Code::MapSeed, "no free slot in pf_pods: " + std::to_string(PF_MAX_SLOTS) +
                                   " pod interfaces already attached on this node (run GC?)");
}

std::set<std::uint32_t> PolicyStore::used_slots() const {
    std::set<std::uint32_t> out;
    const std::vector<pf_pod>& pods = this->pods();
    for (std::uint32_t s = 0; s < PF_MAX_SLOTS; ++s)
        if (pods[s].flags != 0) out.insert(s);
    return out;
}

bool PolicyStore::has_inactive_used_slot() const {
    const std::vector<pf_pod>& pods = this->pods();
    return std::any_of(pods.begin(), pods.end(),
                       [](const pf_pod& p) { return p.flags != 0 && !(p.flags & PF_POD_ACTIVE); });
}

std::uint32_t PolicyStore::claim_slot(const std::set<std::uint32_t>& also_taken) {
    const std::uint32_t slot = allocate_slot(also_taken);
    claim(slot);
    return slot;
}

void PolicyStore::claim(std::uint32_t slot) {
    check_slot(slot);
    pf_pod pod = current(slot);
    pod.flags |= PF_POD_CLAIMED;
    put(slot, pod);
}

bool PolicyStore::release(std::uint32_t slot) {
    check_slot(slot);
    const pf_pod pod = current(slot);
    if ((pod.flags & ~PF_POD_CLAIMED) != 0) return false;
    if (pod.flags != 0) put(slot, pf_pod{pod.rev, 0});
    return true;
}

std::optional<pf_pod> PolicyStore::pod(std::uint32_t slot) const {
    pf_pod pod{};
    if (bpf_map_lookup_elem(dp_.pods_map(), &slot, &pod) != 0) return std::nullopt;
    return pod;
}

std::uint32_t PolicyStore::revision(std::uint32_t slot) const {
    check_slot(slot);
    pf_pod pod{};
    if (bpf_map_lookup_elem(dp_.pods_map(), &slot, &pod) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_lookup_elem", "pf_pods[" + std::to_string(slot) + "]",
                          errno);
    return pod.rev;
}

} // namespace podfence::bpf
