#include "teardown.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <set>
#include <utility>

#include "../bpf/datapath.hpp"
#include "../bpf/layout.hpp"
#include "../bpf/policy_store.hpp"
#include "../common/log.hpp"
#include "backend.hpp"
#include "upgrade.hpp"

namespace podfence::verbs {
namespace {

bool dir_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The slot stays claimed (PF_POD_CLAIMED) while the record names it.
void clear_slot(const std::string& datapath_dir, std::uint32_t slot, Problems& errors) {
    if (datapath_dir.empty() || !dir_exists(datapath_dir)) {
        log::info("teardown: datapath " + datapath_dir + " is gone; slot " + std::to_string(slot) +
                  " has nothing to clear");
        return;
    }
    try {
        bpf::Datapath dp = bpf::Datapath::open_dir(datapath_dir);
        bpf::PolicyStore(dp).clear(slot, nullptr, bpf::PolicyStore::After::Claimed);
    } catch (const std::exception& e) {
        errors.add("clearing slot " + std::to_string(slot) + " in " + datapath_dir + ": " + e.what());
    }
}

void clear_slot(const bpf::AttachmentRecord& rec, Problems& errors) {
    clear_slot(rec.datapath_dir, rec.slot, errors);
    // A move to another datapath that did not finish holds a slot there too.
    if (!rec.previous_datapath_dir.empty()) clear_slot(rec.previous_datapath_dir, rec.previous_slot, errors);
}

void release_slot(const std::string& datapath_dir, std::uint32_t slot, Problems& errors) {
    if (datapath_dir.empty() || !dir_exists(datapath_dir)) return;
    try {
        bpf::Datapath dp = bpf::Datapath::open_dir(datapath_dir);
        if (!bpf::PolicyStore(dp).release(slot))
            errors.add("slot " + std::to_string(slot) + " in " + datapath_dir + " is in use again");
    } catch (const std::exception& e) {
        errors.add("releasing slot " + std::to_string(slot) + " in " + datapath_dir + ": " + e.what());
    }
}

} // namespace

bool teardown(bpf::StateStore& store, const bpf::AttachmentRecord& rec, Problems& problems) {
    Problems errors;
    std::string what = "container " + rec.container_id + " ifname " + rec.ifname;
    try {
        const std::string dir = store.dir_for(rec.container_id, rec.ifname);
        backend_for(rec)->detach(rec, dir, errors);
        // A link that is still attached would run its stub on whatever pod
        // reuses the slot: clear it only once everything is detached.
        if (errors.empty()) clear_slot(rec, errors);
        if (errors.empty()) store.remove(rec.container_id, rec.ifname);
        // Free only once no record names the slot: a kill before this point
        // leaves it claimed, and release_unreferenced_slots() frees it.
        if (errors.empty()) {
            release_slot(rec.datapath_dir, rec.slot, errors);
            if (!rec.previous_datapath_dir.empty())
                release_slot(rec.previous_datapath_dir, rec.previous_slot, errors);
        }
    } catch (const std::exception& e) {
        errors.add(e.what());
    }
    for (const auto& e : errors.list()) {
        log::error("teardown of " + what + ": " + e);
        problems.add(what + ": " + e);
    }
    if (errors.empty())
        log::info("removed attachment of " + what + " (slot " + std::to_string(rec.slot) + ")");
    return errors.empty();
}

std::size_t release_unreferenced_slots(bpf::StateStore& store, Problems& problems, bool quick,
                                       bpf::PolicyStore* open) {
    struct Used {
        std::string name, dir;
        // Kept open for the freeing below: the caller's store of this
        // datapath, or one of its own (heap: a store refers to its datapath).
        std::unique_ptr<bpf::Datapath> own_dp;
        std::unique_ptr<bpf::PolicyStore> own;
        bpf::PolicyStore* policies;
    };
    std::vector<Used> used;
    bool inactive = false;
    for (const auto& name : datapath_names(store.root())) {
        const std::string dir = bpf::layout::datapath_dir(store.root(), name);
        try {
            Used u{name, dir, nullptr, nullptr, open};
            if (!open || open->datapath().dir() != dir) {
                u.own_dp = std::make_unique<bpf::Datapath>(bpf::Datapath::open_dir(dir));
                u.own = std::make_unique<bpf::PolicyStore>(*u.own_dp);
                u.policies = u.own.get();
            }
            inactive = inactive || u.policies->has_inactive_used_slot();
            used.push_back(std::move(u));
        } catch (const std::exception& e) {
            problems.add("slots of " + dir + ": " + e.what());
        }
    }
    // Only an inactive slot is ever cleared below: with none, quick skips
    // reading the records (a directory listing that grows with the pods).
    if (quick && !inactive) return 0;
    const std::size_t dirs = store.count();
    auto records = store.list();
    if (records.size() < dirs) {
        log::warn("some attachment records are unreadable: slots no readable record names are kept");
        return 0;
    }
    for (auto& lost : store.list_lost())
        records.push_back(std::move(lost));
    // By datapath name: a record's path is spelled as its verb's bpffsRoot was.
    auto name_of = [](const std::string& dir) { return std::filesystem::path(dir).filename().string(); };
    std::set<std::pair<std::string, std::uint32_t>> named;
    for (const auto& r : records) {
        named.insert({name_of(r.datapath_dir), r.slot});
        if (!r.previous_datapath_dir.empty())
            named.insert({name_of(r.previous_datapath_dir), r.previous_slot});
    }
    std::size_t freed = 0;
    for (const auto& u : used) {
        try {
            bpf::PolicyStore& slots = *u.policies;
            for (std::uint32_t slot : slots.used_slots()) {
                if (named.count({u.name, slot})) continue;
                // No kill leaves an active slot without its record (ADD
                // activates after writing it, DEL clears before removing it):
                // one would be a live pod, never cleared on bookkeeping alone.
                if (const auto pod = slots.pod(slot); pod && (pod->flags & PF_POD_ACTIVE)) {
                    log::warn("slot " + std::to_string(slot) + " of " + u.dir +
                              " is active but named by no attachment record: kept");
                    continue;
                }
                log::warn("slot " + std::to_string(slot) + " of " + u.dir +
                          " is named by no attachment record (a verb was killed mid-way): clearing it");
                slots.clear(slot);
                ++freed;
            }
            if (std::size_t n = slots.drop_stray_sources())
                log::warn(std::to_string(n) + " source check entries of free slots in " + u.dir +
                          " (left by an older podfence killed mid-way): deleted");
        } catch (const std::exception& e) {
            problems.add("freeing unreferenced slots of " + u.dir + ": " + e.what());
        }
    }
    return freed;
}

} // namespace podfence::verbs
