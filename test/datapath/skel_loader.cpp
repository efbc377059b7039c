#include "datapath/skel_loader.hpp"

#include <bpf/libbpf.h>

#include "podfence.skel.h"

namespace pftest {

struct SkelObject {
    ::podfence* skel = nullptr;
};

void SkelObjectDeleter::operator()(SkelObject* s) const {
    podfence__destroy(s->skel);
    delete s;
}

SkelPtr load_skeleton(SkelFds& fds) {
    ::podfence* s = podfence__open_and_load();
    if (!s) return nullptr;
    SkelPtr owner(new SkelObject{s});
    fds.tc = bpf_program__fd(s->progs.pf_tc);
    fds.xdp = bpf_program__fd(s->progs.pf_xdp);
    fds.policy = bpf_map__fd(s->maps.pf_policy);
    fds.pods = bpf_map__fd(s->maps.pf_pods);
    fds.scratch = bpf_map__fd(s->maps.pf_scratch);
    fds.tc_engine = bpf_map__fd(s->maps.pf_tc_engine);
    fds.xdp_engine = bpf_map__fd(s->maps.pf_xdp_engine);
    fds.conntrack = bpf_map__fd(s->maps.pf_conntrack);
    fds.counters = bpf_map__fd(s->maps.pf_counters);
    fds.rule_hits = bpf_map__fd(s->maps.pf_rule_hits);
    fds.config = bpf_map__fd(s->maps.pf_config);
    fds.events = bpf_map__fd(s->maps.pf_events);
    return owner;
}

} // namespace pftest
