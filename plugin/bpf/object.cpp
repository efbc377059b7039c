#include "object.hpp"

#include <bpf/libbpf.h>

#include <string>

#include <bpf/bpf.h>

#include "common/error.hpp"
#include "common/log.hpp"
#include "pf_datapath.skel.h"
#include "pf_fastpath.skel.h"

namespace podfence::bpf {

void EmbeddedObject::Deleter::operator()(pf_datapath* s) const {
    pf_datapath::destroy(s);
}

EmbeddedObject EmbeddedObject::load() {
    EmbeddedObject o;
    o.skel_.reset(pf_datapath::open_and_load());
    return o;
}

EmbeddedObject EmbeddedObject::load(std::span<const std::pair<Map, int>> reuse) {
    EmbeddedObject o;
    o.skel_.reset(pf_datapath::open());
    if (!o.skel_) return o;
    for (const auto& [m, fd] : reuse) {
        bpf_map* map = bpf_object__find_map_by_name(o.skel_->obj, map_info(m).name);
        bpf_map_info info{};
        std::uint32_t len = sizeof info;
        if (!map || bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
        // libbpf does not check a reused fd: a layout the programs do not
        // expect would only show as verifier errors, or worse.
        if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
            info.value_size != bpf_map__value_size(map) || info.max_entries != bpf_map__max_entries(map) ||
            info.map_flags != bpf_map__map_flags(map)) {
            log::info(std::string("not sharing ") + map_info(m).name + " (id " + std::to_string(info.id) +
                      "): its layout differs from this datapath's");
            continue;
        }
        if (bpf_map__reuse_fd(map, fd) != 0) {
            log::warn(failed("bpf_map__reuse_fd", map_info(m).name, errno));
            continue;
        }
        log::info(std::string("sharing ") + map_info(m).name + " (map id " + std::to_string(info.id) +
                  ") with the previous datapath");
    }
    if (pf_datapath::load(o.skel_.get()) != 0) {
        int e = errno;
        o.skel_.reset();
        errno = e;
    }
    return o;
}

std::span<const std::byte> EmbeddedObject::elf() {
    std::size_t size = 0;
    const void* data = pf_datapath::elf_bytes(&size);
    return {static_cast<const std::byte*>(data), size};
}

std::span<const std::byte> EmbeddedObject::fastpath_elf() {
    std::size_t size = 0;
    const void* data = pf_fastpath::elf_bytes(&size);
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
