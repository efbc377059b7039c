// GC: remove attachments the runtime no longer knows, then datapaths that
// nothing uses any more (left by older binaries).
#include <algorithm>
#include <optional>
#include <set>

#include "../bpf/datapath.hpp"
#include "../bpf/state.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "../bpf/layout.hpp"
#include "prepare.hpp"
#include "teardown.hpp"
#include "upgrade.hpp"
#include "verbs.hpp"

namespace podfence::verbs {

Output gc(const cni::Env&, const cni::NetConf& conf) {
    require_verb_version(cni::Verb::Gc, conf);
    // Spec 1.1: GC is per network. Only this network's attachments are
    // candidates; without a list (libcni's GCNetworkList(list, nil)) none of
    // them is valid.
    if (conf.name.empty())
        throw Error(Code::InvalidConfig,
                    "name: missing or empty; GC is per network and needs the network's name");
    std::optional<std::vector<cni::AttachmentId>> valid_list = cni::parse_valid_attachments(conf);
    std::set<cni::AttachmentId> valid;
    if (valid_list) valid.insert(valid_list->begin(), valid_list->end());

    const std::string& root = conf.bpffs_root;
    if (!bpf::has_state(root)) return std::nullopt;
    bpf::NodeLock lock(root, std::chrono::seconds(conf.lock_timeout_seconds));
    upgrade_if_needed(root);
    bpf::StateStore store(root);
    Problems errors;
    std::size_t removed = 0;
    // Also records whose pins are gone but whose copy is left (a DEL killed
    // after unpinning, or a lost bpffs): the same rules, removed from the
    // copy as DEL does.
    auto records = store.list();
    for (auto& lost : store.list_lost())
        records.push_back(std::move(lost));
    for (const auto& rec : records) {
        const std::string who = "container " + rec.container_id + " ifname " + rec.ifname;
        if (rec.network.empty()) {
            // Written before records named their network: it may belong to
            // any network, so only its DEL removes it.
            log::info("GC: " + who +
                      " has no network name (attached by an older podfence): kept until its DEL");
            continue;
        }
        if (rec.network != conf.name || valid.count({rec.container_id, rec.ifname})) continue;
        log::info("GC: " + who + " of network " + conf.name + " is not a valid attachment" +
                  (valid_list ? "" : " (the request lists none)"));
        if (teardown(store, rec, errors)) ++removed;
    }
    // Directories without a record and half-written record copies (a verb
    // killed mid-way) hold nothing enforced and name no network: whichever
    // GC runs first removes them.
    try {
        for (const auto& name : store.remove_orphans())
            log::info("GC: removed " + name + ", a record-less leftover of a killed verb");
    } catch (const Error& e) {
        errors.add(e.what());
    }
    if (std::size_t n = release_unreferenced_slots(store, errors, false))
        log::info("GC: freed " + std::to_string(n) + " slot(s) no attachment record names");
    remove_unused_datapaths(root, store.list(), errors);
    // A first ADD killed while loading the datapath leaves its build: only
    // the next load would remove it, and it holds every map of a datapath.
    try {
        for (const auto& n : bpf::remove_unfinished_builds(root))
            log::info("GC: removed unfinished datapath build " + n + " (left by a killed verb)");
    } catch (const Error& e) {
        errors.add(e.what());
    }
    log::info("GC: removed " + std::to_string(removed) + " attachment(s), " + std::to_string(errors.size()) +
              " error(s)");
    errors.raise(Code::Io, "GC could not remove everything");
    return std::nullopt;
}

} // namespace podfence::verbs
