// DEL: idempotent. Runtimes send it twice (the second time with no netns
// and no prevResult) and after failed ADDs; nothing there is success.
#include "../bpf/datapath.hpp"
#include "../bpf/layout.hpp"
#include "../bpf/state.hpp"
#include "../common/error.hpp"
#include "../cni/result.hpp"
#include "../common/log.hpp"
#include "teardown.hpp"
#include "upgrade.hpp"
#include "verbs.hpp"

namespace podfence::verbs {

Output del(const cni::Env& env, const cni::NetConf& conf) {
    // DEL does not use prevResult: a malformed one must not block removing
    // the pod (runtimes retry DEL until it succeeds), so it is only logged.
    if (conf.prev_result) {
        try {
            cni::parse_result(*conf.prev_result, conf.cni_version);
        } catch (const Error& e) {
            log::warn(std::string("DEL: ignoring a malformed prevResult: ") + e.what());
        }
    }
    const std::string& root = conf.bpffs_root;
    bpf::StateStore store(root);
    if (!bpf::has_state(root)) {
        if (!store.find_lost(env.container_id, env.ifname)) {
            log::info("DEL container " + env.container_id + " ifname " + env.ifname +
                      ": no podfence state under " + root + ", nothing to do");
            return std::nullopt;
        }
        bpf::ensure_bpffs(root); // lost: its stubs may still be attached
    }
    bpf::NodeLock lock(root, std::chrono::seconds(conf.lock_timeout_seconds));
    upgrade_if_needed(root);
    auto rec = store.find(env.container_id, env.ifname);
    if (!rec && (rec = store.find_lost(env.container_id, env.ifname)))
        log::warn("DEL container " + env.container_id + " ifname " + env.ifname +
                  ": its pins are gone (lost bpffs?); removing it from its record's copy " +
                  bpf::layout::record_mirror(root, store.dir_for(env.container_id, env.ifname)));
    if (!rec) {
        // A killed ADD (or DEL) can leave the directory without its record.
        const bool orphan = store.remove_orphan(env.container_id, env.ifname);
        log::info("DEL container " + env.container_id + " ifname " + env.ifname +
                  (orphan ? ": removed an attachment directory without a record (left by a killed verb)"
                          : ": no attachment"));
    }
    Problems left;
    if (rec && !teardown(store, *rec, left)) left.raise(Code::Io, "DEL left state behind");
    // Slots a killed verb left claimed without a record (teardown.hpp).
    release_unreferenced_slots(store, left, true);
    left.raise(Code::Io, "DEL could not free a slot left by a killed verb");
    return std::nullopt;
}

} // namespace podfence::verbs
