#include "datapath/skel_loader.hpp"

#include <bpf/libbpf.h>

#include "podfence.skel.h"

namespace pftest {

struct SkelObject {
    explicit SkelObject(::podfence* s) : skel(s) {}
    SkelObject(const SkelObject&) = delete;
    SkelObject& operator=(const SkelObject&) = delete;
    ~SkelObject() { podfence__destroy(skel); }
    ::podfence* skel;
};

// Defined here, where SkelObject is complete.
void SkelObjectDeleter::operator()(SkelObject* s) const {
    std::default_delete<SkelObject>{}(s);
}

SkelPtr load_skeleton(SkelFds& fds) {
    ::podfence* s = podfence__open_and_load();
    if (!s) return nullptr;
    SkelPtr owner(std::make_unique<SkelObject>(s).release());
    fds.tc = bpf_program__fd(s->progs.pf_tc);
    fds.xdp = bpf_program__fd(s->progs.pf_xdp);
    fds.policy = bpf_map__fd(s->maps.pf_policy);
    fds.pods = bpf_map__fd(s->maps.pf_pods);
    fds.scratch = bpf_map__fd(s->maps.pf_scratch);
    fds.tc_engine = bpf_map__fd(s->maps.pf_tc_engine);
    fds.xdp_engine = bpf_map__fd(s->maps.pf_xdp_engine);
    fds.conntrack = bpf_map__fd(s->maps.pf_conntrack);
    fds.frags = bpf_map__fd(s->maps.pf_frags);
    fds.counters = bpf_map__fd(s->maps.pf_counters);
    fds.rule_hits = bpf_map__fd(s->maps.pf_rule_hits);
    fds.config = bpf_map__fd(s->maps.pf_config);
    fds.events = bpf_map__fd(s->maps.pf_events);
    fds.sources = bpf_map__fd(s->maps.pf_sources);
    return owner;
}

} // namespace pftest
