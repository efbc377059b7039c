// The BPF object embedded in this binary, loaded but not pinned: its two
// engine programs and its maps (maps.hpp) by fd. Datapath pins one; the
// datapath tests and the bench use one directly.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <utility>

#include "maps.hpp"

struct pf_datapath; // the bpftool skeleton (bpf/CMakeLists.txt)

namespace podfence::bpf {

class EmbeddedObject {
public:
    // pf_datapath__open_and_load(). On failure the object is empty (false)
    // and errno is set.
    static EmbeddedObject load();
    // Same, but each (map, fd) in `reuse` is used instead of creating that
    // map, when its type, key, value, size and flags match the object's
    // (a mismatched one is skipped and logged). For state that must survive
    // a datapath upgrade: conntrack, fragment state.
    static EmbeddedObject load(std::span<const std::pair<Map, int>> reuse);
    // The ELF the skeleton embeds (its hash names the datapath directory).
    static std::span<const std::byte> elf();
    // The per-attachment program's ELF (bpf/fastpath.bpf.c, plugin/bpf/stub.cpp),
    // which loads on this datapath's maps: part of that name too.
    static std::span<const std::byte> fastpath_elf();

    explicit operator bool() const { return skel_ != nullptr; }
    int tc_prog() const;
    int xdp_prog() const;
    // Throws Error(Code::BpfLoad) when the object has no such map.
    int map_fd(Map m) const;

private:
    struct Deleter {
        void operator()(pf_datapath* s) const;
    };
    std::unique_ptr<pf_datapath, Deleter> skel_;
};

} // namespace podfence::bpf
