#include "skeletons.hpp"

#include <bpf/libbpf.h>

#include <cerrno>

#include "pf_article.skel.h"
#include "pf_lpm.skel.h"
#include "podfence.skel.h"

namespace pfbench {

struct Skeletons {
    Skeletons() = default;
    Skeletons(const Skeletons&) = delete;
    Skeletons& operator=(const Skeletons&) = delete;
    ~Skeletons() {
        pf_lpm__destroy(lpm);
        pf_article__destroy(article);
        podfence__destroy(dp);
    }
    ::podfence* dp = nullptr;
    ::pf_article* article = nullptr;
    ::pf_lpm* lpm = nullptr;
};

// Defined here, where Skeletons is complete.
void SkeletonsDeleter::operator()(Skeletons* s) const {
    std::default_delete<Skeletons>{}(s);
}

std::unique_ptr<Skeletons, SkeletonsDeleter> load(Fds& fds) {
    std::unique_ptr<Skeletons, SkeletonsDeleter> s(std::make_unique<Skeletons>().release());
    s->dp = podfence__open_and_load();
    if (s->dp) s->article = pf_article__open_and_load();
    if (s->article) s->lpm = pf_lpm__open_and_load();
    if (!s->lpm) {
        int e = errno;
        s.reset();
        errno = e;
        return nullptr;
    }
    fds.tc = bpf_program__fd(s->dp->progs.pf_tc);
    fds.xdp = bpf_program__fd(s->dp->progs.pf_xdp);
    fds.policy = bpf_map__fd(s->dp->maps.pf_policy);
    fds.pods = bpf_map__fd(s->dp->maps.pf_pods);
    fds.scratch = bpf_map__fd(s->dp->maps.pf_scratch);
    fds.conntrack = bpf_map__fd(s->dp->maps.pf_conntrack);
    fds.article_tc = bpf_program__fd(s->article->progs.article_tc);
    fds.article_xdp = bpf_program__fd(s->article->progs.article_xdp);
    fds.article_ports = bpf_map__fd(s->article->maps.port_map);
    fds.lpm_tc = bpf_program__fd(s->lpm->progs.lpm_tc);
    fds.lpm_v4 = bpf_map__fd(s->lpm->maps.lpm_v4);
    fds.lpm_v6 = bpf_map__fd(s->lpm->maps.lpm_v6);
    fds.lpm_slot = &s->lpm->bss->lpm_slot;
    return s;
}

} // namespace pfbench
