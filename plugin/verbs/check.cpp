// CHECK: is the pod still enforced exactly as this CHECK's config says?
// Collects every difference into one CheckMismatch error.
#include <bpf/bpf.h>

#include "../../bpf/podfence_abi.h"
#include "../bpf/datapath.hpp"
#include "../bpf/policy_store.hpp"
#include "../bpf/state.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "../netlink/netlink.hpp"
#include "../netlink/netns.hpp"
#include "backend.hpp"
#include "layout.hpp"
#include "prepare.hpp"
#include "verbs.hpp"

namespace podfence::verbs {
namespace {

using Problems = std::vector<std::string>;

[[noreturn]] void mismatch(const cni::Env& env, const Problems& problems) {
    std::string all;
    for (const auto& p : problems)
        all += (all.empty() ? "" : "; ") + p;
    throw Error(Code::CheckMismatch,
                "CHECK container " + env.container_id + " ifname " + env.ifname + ": " + all);
}

void check_interfaces(const cni::Env& env, const bpf::AttachmentRecord& rec, Problems& problems) {
    auto host = netlink::get_link(rec.host_ifname);
    if (!host)
        problems.push_back("host veth " + rec.host_ifname + " is gone");
    else if (static_cast<std::uint32_t>(host->ifindex) != rec.host_ifindex)
        problems.push_back("host veth " + rec.host_ifname + " has ifindex " + std::to_string(host->ifindex) +
                           ", was " + std::to_string(rec.host_ifindex) + " at ADD");
    netlink::NetnsGuard in_pod(env.netns);
    auto pod = netlink::get_link(env.ifname);
    if (!pod)
        problems.push_back(env.ifname + " is gone from " + env.netns);
    else if (static_cast<std::uint32_t>(pod->ifindex) != rec.pod_ifindex)
        problems.push_back(env.ifname + " has ifindex " + std::to_string(pod->ifindex) + ", was " +
                           std::to_string(rec.pod_ifindex) + " at ADD");
}

void check_slot(const bpf::Datapath& dp, const bpf::AttachmentRecord& rec, const PolicyPlan& plan,
                Problems& problems) {
    pf_pod pod{};
    std::uint32_t slot = rec.slot;
    if (bpf_map_lookup_elem(dp.pods_map(), &slot, &pod) != 0 || !(pod.flags & PF_POD_ACTIVE)) {
        problems.push_back("pf_pods[" + std::to_string(slot) +
                           "] is not active (the datapath treats the pod as unknown)");
        return;
    }
    auto kernel = bpf::PolicyStore(dp).read(slot);
    EntryDiff d = diff_entries(kernel, plan.entries);
    if (!d.empty())
        problems.push_back("the policy in the kernel (slot " + std::to_string(slot) + ", " +
                           std::to_string(kernel.size()) + " entries) differs from the pod's policy (" +
                           std::to_string(plan.entries.size()) + " entries): " + std::to_string(d.missing) +
                           " missing, " + std::to_string(d.unexpected) + " unexpected");
}

} // namespace

Output check(const cni::Env& env, const cni::NetConf& conf) {
    require_verb_version(cni::Verb::Check, conf);
    require_prev_result(conf);
    PolicyPlan plan = plan_policy(conf);

    const std::string& root = conf.bpffs_root;
    if (!has_state(root)) mismatch(env, {"no podfence state under " + root});
    bpf::NodeLock lock(root);
    bpf::StateStore store(root);
    auto rec = store.find(env.container_id, env.ifname);
    if (!rec) mismatch(env, {"no podfence attachment recorded"});
    std::string want_mode(cni::to_string(conf.mode));

    Problems problems;
    if (rec->mode != want_mode)
        problems.push_back("attached in mode " + rec->mode + ", the configuration says " + want_mode);
    try {
        check_interfaces(env, *rec, problems);
        backend_for(*rec)->verify(*rec, attachment_dir(store, root, env.container_id, env.ifname), problems);
    } catch (const Error& e) {
        problems.push_back(e.what());
    }
    try {
        bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
        check_slot(dp, *rec, plan, problems);
    } catch (const Error& e) {
        problems.push_back("pinned datapath " + rec->datapath_dir + " is unusable: " + e.what());
    }
    if (!problems.empty()) mismatch(env, problems);
    log::info("CHECK container " + env.container_id + " ifname " + env.ifname + ": ok");
    return std::nullopt;
}

} // namespace podfence::verbs
