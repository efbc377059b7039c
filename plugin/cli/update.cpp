// `podfence update <pod> <ifname> [policy.json|-] [--enforcement enforce|audit]`:
// replace a live pod's policy, switch its enforcement, or both in one step
// (annotations are read only at sandbox creation).
#include <iostream>
#include <optional>

#include "../bpf/datapath.hpp"
#include "../bpf/policy_store.hpp"
#include "../bpf/state.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "../policy/compile.hpp"
#include "../policy/policy.hpp"
#include "../verbs/upgrade.hpp"
#include "cli.hpp"
#include "policy_input.hpp"
#include "records.hpp"

namespace podfence::cli {

void cmd_update(const Args& a) {
    constexpr const char* kUsage =
        "usage: podfence update <pod> <ifname> [policy.json|-] [--enforcement enforce|audit] (a policy, "
        "an enforcement, or both)";
    const std::optional<std::string> mode_text = a.option("--enforcement");
    if (a.positional.size() < 2 || (a.positional.size() == 2 && !mode_text))
        throw Error(Code::InvalidConfig, kUsage);
    const std::string& selector = a.positional[0];
    const std::string& ifname = a.positional[1];
    // Parse and compile before taking the lock or touching the kernel.
    std::optional<policy::Enforcement> mode;
    if (mode_text) {
        mode = policy::parse_enforcement(*mode_text);
        if (!mode)
            throw Error(Code::InvalidConfig,
                        "--enforcement: \"" + *mode_text + "\" is not one of enforce, audit");
    }
    std::optional<PolicyInput> in;
    if (a.positional.size() == 3) in = parse_policy_input(read_policy_source(a.positional[2]));

    const std::string cid = find_one(a, selector, ifname).container_id;
    bpf::NodeLock lock(a.bpffs_root);
    verbs::upgrade_if_needed(a.bpffs_root); // a pod on an older datapath moves first
    bpf::StateStore store(a.bpffs_root);
    auto rec = store.find(cid, ifname);
    if (!rec)
        throw Error(Code::UnknownContainer, "no attachment for container " + cid + " ifname " + ifname +
                                                " (removed meanwhile; see podfence inspect)");
    bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
    bpf::PolicyStore policies(dp);
    std::optional<bool> audit;
    if (mode) audit = *mode == policy::Enforcement::Audit;
    // One pf_pods write carries the new policy's revision and the mode.
    if (in)
        rec->rev = policies.replace(rec->slot, in->entries, 0, audit);
    else if (audit)
        rec->rev = policies.set_audit(rec->slot, *audit);
    if (in) rec->policy_json = policy::to_json(in->policy);
    if (mode) rec->enforcement = std::string(policy::to_string(*mode));
    store.update(*rec);
    std::string msg = "updated container " + cid + " ifname " + ifname + ": rev " + std::to_string(rec->rev) +
                      ", enforcement " + rec->enforcement;
    if (in)
        msg += ", " + policy::summary(in->policy) + " (" + std::to_string(in->entries.size()) +
               " policy map entries)";
    log::info(msg);
    std::cout << msg << "\n";
}

} // namespace podfence::cli
