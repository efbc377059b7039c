// The per-attachment stub (see bpf/podfence_abi.h, pf_scratch): a dozen raw
// instructions that hand {slot, dir} to the shared engine.
#pragma once

#include <cstdint>

#include "../common/fd.hpp"
#include "datapath.hpp"

namespace podfence::bpf {

// Loads a stub: writes {slot, dir} to pf_scratch and tail-calls the TC or
// XDP engine; drops if the tail call fails. Throws Error(Code::BpfLoad).
UniqueFd load_tc_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir);
UniqueFd load_xdp_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir);

} // namespace podfence::bpf
