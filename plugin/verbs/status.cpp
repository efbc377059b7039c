// STATUS: can an ADD succeed right now? Answers with code 50 and the reason.
#include "../bpf/datapath.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "prepare.hpp"
#include "verbs.hpp"

namespace podfence::verbs {

Output status(const cni::Env&, const cni::NetConf& conf) {
    require_verb_version(cni::Verb::Status, conf);
    auto not_ready = [](const std::string& why, const std::exception& e) {
        throw Error(Code::NotReady, "podfence is not ready: " + why + ": " + e.what());
    };
    const std::string& root = conf.bpffs_root;
    try {
        attach_mode_for(conf);
    } catch (const std::exception& e) {
        not_ready("mode tc cannot be enforced", e);
    }
    try {
        bpf::ensure_bpffs(root);
    } catch (const std::exception& e) {
        not_ready("no usable bpffs at " + root, e);
    }
    try {
        bpf::NodeLock lock(root, std::chrono::seconds(conf.lock_timeout_seconds));
        bpf::Datapath::open_or_load(root);
    } catch (const std::exception& e) {
        not_ready("the datapath cannot be loaded", e);
    }
    return std::nullopt;
}

} // namespace podfence::verbs
