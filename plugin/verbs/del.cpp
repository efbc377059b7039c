// DEL: idempotent. Runtimes send it twice (the second time with no netns
// and no prevResult) and after failed ADDs; nothing there is success.
#include "../bpf/datapath.hpp"
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
    if (!bpf::has_state(root)) {
        log::info("DEL container " + env.container_id + " ifname " + env.ifname +
                  ": no podfence state under " + root + ", nothing to do");
        return std::nullopt;
    }
    bpf::NodeLock lock(root, std::chrono::seconds(conf.lock_timeout_seconds));
    upgrade_if_needed(root);
    bpf::StateStore store(root);
    auto rec = store.find(env.container_id, env.ifname);
    if (!rec) {
        // A killed ADD (or DEL) can leave the directory without its record.
        const bool orphan = store.remove_orphan(env.container_id, env.ifname);
        log::info("DEL container " + env.container_id + " ifname " + env.ifname +
                  (orphan ? ": removed an attachment directory without a record (left by a killed verb)"
                          : ": no attachment, nothing to do"));
        return std::nullopt;
    }
    Problems left;
    if (!teardown(store, *rec, left)) left.raise(Code::Io, "DEL left state behind");
    return std::nullopt;
}

} // namespace podfence::verbs
