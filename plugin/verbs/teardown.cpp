#include "teardown.hpp"

#include <sys/stat.h>

#include "../bpf/datapath.hpp"
#include "../bpf/policy_store.hpp"
#include "../common/log.hpp"
#include "backend.hpp"

namespace podfence::verbs {
namespace {

bool dir_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void clear_slot(const std::string& datapath_dir, std::uint32_t slot, Problems& errors) {
    if (datapath_dir.empty() || !dir_exists(datapath_dir)) {
        log::info("teardown: datapath " + datapath_dir + " is gone; slot " + std::to_string(slot) +
                  " has nothing to clear");
        return;
    }
    try {
        bpf::Datapath dp = bpf::Datapath::open_dir(datapath_dir);
        bpf::PolicyStore(dp).clear(slot);
    } catch (const std::exception& e) {
        errors.add("clearing slot " + std::to_string(slot) + " in " + datapath_dir + ": " + e.what());
    }
}

void clear_slot(const bpf::AttachmentRecord& rec, Problems& errors) {
    clear_slot(rec.datapath_dir, rec.slot, errors);
    // A move to another datapath that did not finish holds a slot there too.
    if (!rec.previous_datapath_dir.empty()) clear_slot(rec.previous_datapath_dir, rec.previous_slot, errors);
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

} // namespace podfence::verbs
