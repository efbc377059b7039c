// The datapath's BPF object (podfence::bpf::EmbeddedObject), unpinned, as
// plain fds; maps by the plugin's one map table (plugin/bpf/maps.hpp).
#pragma once

#include <memory>

#include "bpf/maps.hpp"

namespace pftest {

struct SkelFds {
    int tc = -1, xdp = -1;
    int policy = -1, pods = -1, scratch = -1, tc_engine = -1, xdp_engine = -1, conntrack = -1, counters = -1,
        rule_hits = -1, config = -1, events = -1, frags = -1, sources = -1, conntrack4 = -1, flowcache = -1;
};

struct SkelObject; // owns the loaded skeleton
struct SkelObjectDeleter {
    void operator()(SkelObject* s) const;
};
using SkelPtr = std::unique_ptr<SkelObject, SkelObjectDeleter>;

// pf_datapath__open_and_load(), unpinned. Null with errno set on failure.
SkelPtr load_skeleton(SkelFds& fds);

// The fd in `fds` of map m.
int map_fd(const SkelFds& fds, podfence::bpf::Map m);

} // namespace pftest
