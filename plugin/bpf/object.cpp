#include "object.hpp"

#include <bpf/libbpf.h>

#include <string>

#include "common/error.hpp"
#include "skel_glue.hpp"

namespace podfence::bpf {

void EmbeddedObject::Deleter::operator()(pf_skel::Loaded* s) const {
    pf_skel::destroy(s);
}

EmbeddedObject EmbeddedObject::load() {
    EmbeddedObject o;
    o.skel_.reset(pf_skel::open_and_load());
    return o;
}

int EmbeddedObject::tc_prog() const {
    return bpf_program__fd(pf_skel::prog_tc(skel_.get()));
}

int EmbeddedObject::xdp_prog() const {
    return bpf_program__fd(pf_skel::prog_xdp(skel_.get()));
}

int EmbeddedObject::map_fd(Map m) const {
    const char* name = map_info(m).name;
    bpf_map* map = bpf_object__find_map_by_name(pf_skel::object(skel_.get()), name);
    if (!map) throw Error(Code::BpfLoad, std::string("embedded BPF object has no map ") + name);
    return bpf_map__fd(map);
}

} // namespace podfence::bpf
