// Emptying a BPF hash map from userspace, for tests and the bench.
#pragma once

#include <bpf/bpf.h>

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

} // namespace pftest
