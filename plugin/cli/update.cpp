// `podfence update <containerID> <ifname> <policy.json|->`: replace a live
// pod's policy (annotations are read only at sandbox creation).
#include <iostream>

#include "../bpf/policy_store.hpp"
#include "../bpf/state.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "../policy/compile.hpp"
#include "../policy/policy.hpp"
#include "../bpf/datapath.hpp"
#include "../verbs/upgrade.hpp"
#include "cli.hpp"
#include "policy_input.hpp"

namespace podfence::cli {

void cmd_update(const Args& a) {
    if (a.positional.size() != 3)
        throw Error(Code::InvalidConfig, "usage: podfence update <containerID> <ifname> <policy.json|->");
    const std::string& cid = a.positional[0];
    const std::string& ifname = a.positional[1];
    // Parse and compile before taking the lock or touching the kernel.
    PolicyInput in = parse_policy_input(read_policy_source(a.positional[2]));
    const policy::Policy& pol = in.policy;
    const auto& entries = in.entries;

    if (!bpf::has_state(a.bpffs_root))
        throw Error(Code::UnknownContainer,
                    "no podfence state under " + a.bpffs_root + " (wrong --bpffs-root?)");
    bpf::NodeLock lock(a.bpffs_root);
    verbs::upgrade_if_needed(a.bpffs_root); // a pod on an older datapath moves first
    bpf::StateStore store(a.bpffs_root);
    auto rec = store.find(cid, ifname);
    if (!rec)
        throw Error(Code::UnknownContainer, "no attachment for container " + cid + " ifname " + ifname +
                                                " (see podfence inspect; the full container ID is needed)");
    bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
    rec->rev = bpf::PolicyStore(dp).replace(rec->slot, entries); // atomic swap
    rec->policy_json = policy::to_json(pol);
    store.update(*rec);
    std::string msg = "updated container " + cid + " ifname " + ifname + ": rev " + std::to_string(rec->rev) +
                      ", " + policy::summary(pol) + " (" + std::to_string(entries.size()) +
                      " policy map entries)";
    log::info(msg);
    std::cout << msg << "\n";
}

} // namespace podfence::cli
