// The two skeletons, loaded in a translation unit of their own: the
// datapath skeleton's struct is named `podfence`, which cannot coexist with
// namespace podfence in C++.
#pragma once

#include <memory>

namespace pfbench {

struct Fds {
    int tc = -1, xdp = -1, policy = -1, pods = -1, scratch = -1, conntrack = -1;
    int article_tc = -1, article_xdp = -1, article_ports = -1;
};

struct Skeletons;
struct SkeletonsDeleter {
    void operator()(Skeletons* s) const;
};

// Null with errno set when either fails to load.
std::unique_ptr<Skeletons, SkeletonsDeleter> load(Fds& fds);

} // namespace pfbench
