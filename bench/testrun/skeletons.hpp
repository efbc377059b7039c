// The datapath's BPF object (plugin/bpf/object.hpp, maps by its one table)
// and the two comparison skeletons, loaded together.
#pragma once

#include <memory>

#include "bpf/maps.hpp"

namespace pfbench {

struct Fds {
    int tc = -1, xdp = -1, policy = -1, pods = -1, scratch = -1, conntrack = -1, conntrack4 = -1,
        flowcache = -1, sources = -1;
    int article_tc = -1, article_xdp = -1, article_ports = -1;
    int lpm_tc = -1, lpm_v4 = -1, lpm_v6 = -1; // lpm_v4/v6: arrays of tries
    unsigned* lpm_slot = nullptr;              // which trie lpm_tc uses (.bss, mmap'd)
};

struct Skeletons;
struct SkeletonsDeleter {
    void operator()(Skeletons* s) const;
};

// Null with errno set when one fails to load. The engine arrays hold the
// engine programs, as a pinned datapath's do.
std::unique_ptr<Skeletons, SkeletonsDeleter> load(Fds& fds);

// The fd of the datapath's map m (for the per-attachment programs).
int map_fd(const Skeletons& s, podfence::bpf::Map m);

} // namespace pfbench
