// `podfence upgrade`: move every attachment of the node onto this binary's
// datapath now (every verb does it too; this is the operator's explicit,
// reported way, e.g. right after installing a new binary).
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "../bpf/datapath.hpp"
#include "../bpf/state.hpp"
#include "../common/error.hpp"
#include "../verbs/upgrade.hpp"
#include "cli.hpp"

namespace podfence::cli {

void cmd_upgrade(const Args& a) {
    if (!bpf::has_state(a.bpffs_root))
        throw Error(Code::UnknownContainer,
                    "no podfence state under " + a.bpffs_root + " (wrong --bpffs-root?)");
    const auto start = std::chrono::steady_clock::now();
    bpf::NodeLock lock(a.bpffs_root);
    bpf::StateStore store(a.bpffs_root);
    verbs::UpgradeReport r = verbs::upgrade_all(store, a.bpffs_root);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
            .count();
    if (a.json) {
        nlohmann::json j{{"datapath", bpf::embedded_datapath_name()},
                         {"moved", r.moved},
                         {"refused", r.refused},
                         {"errors", r.errors.list()},
                         {"milliseconds", ms}};
        std::cout << j.dump(2) << "\n";
    } else {
        std::cout << "moved " << r.moved.size() << " attachment(s) to " << bpf::embedded_datapath_name()
                  << " in " << ms << " ms\n";
        for (const auto& m : r.refused)
            std::cout << "refused: " << m << "\n";
        for (const auto& e : r.errors.list())
            std::cout << "failed: " << e << "\n";
    }
    r.errors.raise(Code::Attach, "upgrade: some attachments could not move (they stay on their datapath)");
    if (!r.refused.empty())
        throw Error(
            Code::IncompatibleVersion,
            "upgrade: " + std::to_string(r.refused.size()) +
                " attachment(s) are on a newer datapath ABI than this podfence's; a downgrade is refused");
}

// `podfence repair`: after the bpffs was lost (unmounted, pins deleted),
// restore every pod's pins from the kernel and the record copies.
void cmd_repair(const Args& a) {
    bpf::ensure_bpffs(a.bpffs_root); // mounts a new one where it was lost
    bpf::NodeLock lock(a.bpffs_root);
    bpf::StateStore store(a.bpffs_root);
    verbs::RepairReport r = verbs::repair_all(store, a.bpffs_root);
    if (a.json) {
        std::cout << nlohmann::json{{"repaired", r.repaired}, {"errors", r.errors.list()}}.dump(2) << "\n";
    } else {
        std::cout << "repaired " << r.repaired.size() << " attachment(s)\n";
        for (const auto& e : r.errors.list())
            std::cout << "failed: " << e << "\n";
    }
    r.errors.raise(Code::Io, "repair: some attachments could not be restored");
}

} // namespace podfence::cli
