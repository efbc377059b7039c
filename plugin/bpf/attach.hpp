// Attach points: per-attachment stub programs (stub.hpp), the links that hold
// them on an interface (links.hpp) and their pins (pins.hpp). See
// bpf/podfence_abi.h (pf_scratch) for why stubs.
#pragma once

#include "links.hpp"
#include "pins.hpp"
#include "stub.hpp"
