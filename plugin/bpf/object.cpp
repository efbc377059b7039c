#include "object.hpp"

#include <bpf/libbpf.h>

#include <string>

#include "common/error.hpp"
#include "pf_datapath.skel.h"

namespace podfence::bpf {

void EmbeddedObject::Deleter::operator()(pf_datapath* s) const {
    pf_datapath::destroy(s);
}

EmbeddedObject EmbeddedObject::load() {
    EmbeddedObject o;
    o.skel_.reset(pf_datapath::open_and_load());
    return o;
}

std::span<const std::byte> EmbeddedObject::elf() {
    std::size_t size = 0;
    const void* data = pf_datapath::elf_bytes(&size);
    return {static_cast<const std::byte*>(data), size};
}

int EmbeddedObject::tc_prog() const {
    return bpf_program__fd(skel_->progs.pf_tc);
}

int EmbeddedObject::xdp_prog() const {
    return bpf_program__fd(skel_->progs.pf_xdp);
}

int EmbeddedObject::map_fd(Map m) const {
    const char* name = map_info(m).name;
    bpf_map* map = bpf_object__find_map_by_name(skel_->obj, name);
    if (!map) throw Error(Code::BpfLoad, std::string("embedded BPF object has no map ") + name);
    return bpf_map__fd(map);
}

} // namespace podfence::bpf
