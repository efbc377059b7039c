// Removing one attachment: used by DEL, GC, a re-ADD and ADD's rollback.
#pragma once

#include <cstddef>
#include <string>
#include <vector>
#include "../common/error.hpp"

#include "../bpf/policy_store.hpp"
#include "../bpf/state.hpp"

namespace podfence::verbs {

// Detaches (unpins links; legacy tc: deletes podfence's filters and a clsact
// podfence created that nobody else uses), clears the slot, then removes the
// record. Never throws: each failure is logged and added to `problems`;
// returns whether everything is gone. The record is kept when something
// before it could not be removed, so a later DEL or GC can retry; the slot is
// not cleared while a link may still run its stub.
bool teardown(bpf::StateStore& store, const bpf::AttachmentRecord& rec, Problems& problems);

// Clears and frees every inactive used slot, in every datapath of the node, that no
// attachment record names (every network's, lost copies too): what a verb
// killed between claiming a slot and writing its record, or between removing
// a record and freeing its slot, leaves. Then deletes source check entries of
// free slots (PolicyStore::drop_stray_sources). Call with the NodeLock held.
// quick: only when some used slot is inactive (ADD, and DEL, which runtimes
// send for every pod): on a node where no verb was killed, that check is all
// it costs, the pod tables it reads and no listing of the records. Nothing is
// freed while some record is unreadable. Failures go to `problems`; returns
// how many slots were freed. open: the caller's store of one datapath, used
// for it instead of a second (PolicyStore: one per datapath within a verb).
std::size_t release_unreferenced_slots(bpf::StateStore& store, Problems& problems, bool quick,
                                       bpf::PolicyStore* open = nullptr);

} // namespace podfence::verbs
