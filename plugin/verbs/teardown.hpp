// Removing one attachment: used by DEL, GC, a re-ADD and ADD's rollback.
#pragma once

#include <string>
#include "../common/error.hpp"

#include "../bpf/state.hpp"

namespace podfence::verbs {

// Detaches (unpins links; legacy tc: deletes podfence's filters and a clsact
// podfence created that nobody else uses), clears the slot, then removes the
// record. Never throws: each failure is logged and added to `problems`;
// returns whether everything is gone. The record is kept when something
// before it could not be removed, so a later DEL or GC can retry; the slot is
// not cleared while a link may still run its stub.
bool teardown(bpf::StateStore& store, const bpf::AttachmentRecord& rec, Problems& problems);

} // namespace podfence::verbs
