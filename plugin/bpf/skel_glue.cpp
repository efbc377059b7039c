// Must not include any podfence header: see skel_glue.hpp.
#include "skel_glue.hpp"

#include "podfence.skel.h"

namespace pf_skel {

namespace {
// Loaded is never defined: a Loaded* is a ::podfence* in disguise.
::podfence* skel(Loaded* s) {
    return reinterpret_cast<::podfence*>(s);
}
} // namespace

Loaded* open_and_load() {
    return reinterpret_cast<Loaded*>(::podfence::open_and_load());
}
void destroy(Loaded* s) {
    ::podfence::destroy(skel(s));
}
bpf_object* object(Loaded* s) {
    return skel(s)->obj;
}
bpf_program* prog_tc(Loaded* s) {
    return skel(s)->progs.pf_tc;
}
bpf_program* prog_xdp(Loaded* s) {
    return skel(s)->progs.pf_xdp;
}
const void* elf_bytes(std::size_t* size) {
    return ::podfence::elf_bytes(size);
}

} // namespace pf_skel
