// Emptying BPF maps from userspace, for tests and the bench.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace pftest {

// Deletes every entry of the hash map `fd` whose keys are `Key`. Keys first,
// then deletes: restarting the walk after each delete would rescan the
// emptied buckets every time (quadratic in the table size).
template <typename Key> void delete_all_keys(int fd) {
    std::vector<Key> keys;
    Key k{};
    for (const Key* prev = nullptr; bpf_map_get_next_key(fd, prev, &k) == 0; prev = &keys.back())
        keys.push_back(k);
    for (const Key& key : keys)
        bpf_map_delete_elem(fd, &key);
}

// Zeroes every entry of the per-CPU array `fd` of `entries` values of type
// `Value` (whose size is a multiple of 8, as the kernel lays out per-CPU
// values), on every CPU, in one syscall.
template <typename Value> void zero_percpu_array(int fd, std::uint32_t entries) {
    static_assert(sizeof(Value) % 8 == 0);
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) throw std::runtime_error("libbpf_num_possible_cpus failed");
    std::vector<std::uint32_t> keys(entries);
    std::iota(keys.begin(), keys.end(), 0u);
    std::vector<Value> zeros(static_cast<std::size_t>(entries) * static_cast<std::size_t>(ncpu));
    std::uint32_t count = entries;
    if (bpf_map_update_batch(fd, keys.data(), zeros.data(), &count, nullptr) != 0 || count != entries)
        throw std::runtime_error("bpf_map_update_batch(per-CPU array) failed");
}

} // namespace pftest
