// The BPF object embedded in this binary, loaded but not pinned: its two
// engine programs and its maps (maps.hpp) by fd. Datapath pins one; the
// datapath tests and the bench use one directly.
#pragma once

#include <memory>

#include "maps.hpp"

namespace pf_skel {
struct Loaded;
}

namespace podfence::bpf {

class EmbeddedObject {
public:
    // podfence__open_and_load(). On failure the object is empty (false) and
    // errno is set.
    static EmbeddedObject load();

    explicit operator bool() const { return skel_ != nullptr; }
    int tc_prog() const;
    int xdp_prog() const;
    // Throws Error(Code::BpfLoad) when the object has no such map.
    int map_fd(Map m) const;

private:
    struct Deleter {
        void operator()(pf_skel::Loaded* s) const;
    };
    std::unique_ptr<pf_skel::Loaded, Deleter> skel_;
};

} // namespace podfence::bpf
