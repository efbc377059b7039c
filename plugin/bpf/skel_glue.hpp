// Internal: the generated skeleton declares a global `struct podfence`, which
// clashes with `namespace podfence`, so only skel_glue.cpp includes it and
// the rest of bpf/ goes through these few functions.
#pragma once

#include <cstddef>

struct bpf_object;
struct bpf_program;

namespace pf_skel {

struct Loaded; // opaque: really the skeleton's `struct podfence`
Loaded* open_and_load();
void destroy(Loaded* s);
bpf_object* object(Loaded* s);
bpf_program* prog_tc(Loaded* s);
bpf_program* prog_xdp(Loaded* s);
const void* elf_bytes(std::size_t* size);

} // namespace pf_skel
