// The per-attachment program. On the datapath of this binary: the fast path
// (bpf/fastpath.bpf.c), which serves an established flow's packets itself and
// hands the rest to the engine. On an older datapath, whose engine and maps
// it cannot assume: the stub (see bpf/podfence_abi.h, pf_scratch), a dozen
// raw instructions that hand {slot, dir} to the shared engine.
#pragma once

#include <cstdint>
#include <functional>

#include "../common/fd.hpp"
#include "datapath.hpp"
#include "maps.hpp"

namespace podfence::bpf {

// Loads the stub for one hook of pod `slot` in direction `dir`, the one the
// datapath dp can run (above). Either drops what the engine drops, and drops
// when the hand-over fails. Throws Error(Code::BpfLoad).
UniqueFd load_tc_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir);
UniqueFd load_xdp_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir);

// The fast path on the maps `map_fd` gives (-1: a map it does not need), which
// must be those of this binary's engine, in pf_tc_engine / pf_xdp_engine.
// For load_*_stub and the datapath tests. Throws Error(Code::BpfLoad).
UniqueFd load_attachment_program(const std::function<int(Map)>& map_fd, bool xdp, std::uint32_t slot,
                                 std::uint32_t dir);
// The raw stub on these maps: what pods on an older datapath run; for the
// test_run bench's like-for-like comparison. Throws Error(Code::BpfLoad).
UniqueFd load_raw_stub(int scratch_fd, int engine_fd, bool xdp, std::uint32_t slot, std::uint32_t dir);

} // namespace podfence::bpf
