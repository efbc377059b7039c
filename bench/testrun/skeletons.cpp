#include "skeletons.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>

#include "bpf/object.hpp"
#include "pf_article.skel.h"
#include "pf_lpm.skel.h"

namespace pfbench {

struct Skeletons {
    Skeletons() = default;
    Skeletons(const Skeletons&) = delete;
    Skeletons& operator=(const Skeletons&) = delete;
    ~Skeletons() {
        pf_lpm__destroy(lpm);
        pf_article__destroy(article);
    }
    podfence::bpf::EmbeddedObject dp;
    ::pf_article* article = nullptr;
    ::pf_lpm* lpm = nullptr;
};

// Defined here, where Skeletons is complete.
void SkeletonsDeleter::operator()(Skeletons* s) const {
    std::default_delete<Skeletons>{}(s);
}

std::unique_ptr<Skeletons, SkeletonsDeleter> load(Fds& fds) {
    std::unique_ptr<Skeletons, SkeletonsDeleter> s(std::make_unique<Skeletons>().release());
    s->dp = podfence::bpf::EmbeddedObject::load();
    if (s->dp) s->article = pf_article__open_and_load();
    if (s->article) s->lpm = pf_lpm__open_and_load();
    if (!s->lpm) {
        int e = errno;
        s.reset();
        errno = e;
        return nullptr;
    }
    using podfence::bpf::Map;
    fds.tc = s->dp.tc_prog();
    fds.xdp = s->dp.xdp_prog();
    fds.policy = s->dp.map_fd(Map::Policy);
    fds.pods = s->dp.map_fd(Map::Pods);
    fds.scratch = s->dp.map_fd(Map::Scratch);
    fds.conntrack = s->dp.map_fd(Map::Conntrack);
    fds.conntrack4 = s->dp.map_fd(Map::Conntrack4);
    fds.flowcache = s->dp.map_fd(Map::FlowCache);
    fds.sources = s->dp.map_fd(Map::Sources);
    fds.article_tc = bpf_program__fd(s->article->progs.article_tc);
    fds.article_xdp = bpf_program__fd(s->article->progs.article_xdp);
    fds.article_ports = bpf_map__fd(s->article->maps.port_map);
    fds.lpm_tc = bpf_program__fd(s->lpm->progs.lpm_tc);
    fds.lpm_v4 = bpf_map__fd(s->lpm->maps.lpm_v4);
    fds.lpm_v6 = bpf_map__fd(s->lpm->maps.lpm_v6);
    fds.lpm_slot = &s->lpm->bss->lpm_slot;
    const std::uint32_t zero = 0;
    if (bpf_map_update_elem(s->dp.map_fd(Map::TcEngine), &zero, &fds.tc, BPF_ANY) ||
        bpf_map_update_elem(s->dp.map_fd(Map::XdpEngine), &zero, &fds.xdp, BPF_ANY))
        return nullptr;
    return s;
}

int map_fd(const Skeletons& s, podfence::bpf::Map m) {
    return s.dp.map_fd(m);
}

} // namespace pfbench
