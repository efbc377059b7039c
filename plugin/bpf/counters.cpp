#include "counters.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <vector>

#include "common/error.hpp"

namespace podfence::bpf {
namespace {

// Per-CPU map values come as one element per possible CPU, in 8-byte steps.
static_assert(sizeof(pf_counter) % 8 == 0);
template <typename T> std::vector<T> percpu_lookup(int map_fd, const void* key) {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) throw errno_error(Code::MapSeed, "libbpf_num_possible_cpus", "", ncpu);
    std::vector<T> values(static_cast<std::size_t>(ncpu));
    if (bpf_map_lookup_elem(map_fd, key, values.data()) != 0) return {};
    return values;
}

} // namespace

std::array<pf_counter, PF_NUM_DIRS> read_totals(const Datapath& dp, std::uint32_t slot) {
    std::array<pf_counter, PF_NUM_DIRS> out{};
    for (std::uint32_t d = 0; d < PF_NUM_DIRS; ++d) {
        std::uint32_t key = slot * PF_NUM_DIRS + d;
        for (const pf_counter& c : percpu_lookup<pf_counter>(dp.counters_map(), &key)) {
            out[d].allowed_packets += c.allowed_packets;
            out[d].allowed_bytes += c.allowed_bytes;
            out[d].denied_packets += c.denied_packets;
            out[d].denied_bytes += c.denied_bytes;
            out[d].spoofed_packets += c.spoofed_packets;
            out[d].spoofed_bytes += c.spoofed_bytes;
            out[d].would_deny_packets += c.would_deny_packets;
            out[d].would_deny_bytes += c.would_deny_bytes;
            out[d].events_lost += c.events_lost;
        }
    }
    return out;
}

SlotCounters read_counters(const Datapath& dp, std::uint32_t slot) {
    SlotCounters out{};
    const auto totals = read_totals(dp, slot);
    for (std::uint32_t d = 0; d < PF_NUM_DIRS; ++d)
        out[d].total = totals[d];
    pf_rule_key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(dp.rule_hits_map(), prev, &next) == 0) {
        key = next;
        prev = &key;
        if (key.slot != slot || key.dir >= PF_NUM_DIRS) continue;
        std::uint64_t sum = 0;
        for (std::uint64_t v : percpu_lookup<std::uint64_t>(dp.rule_hits_map(), &key))
            sum += v;
        out[key.dir].rule_hits[key.rule] += sum;
    }
    return out;
}

} // namespace podfence::bpf
