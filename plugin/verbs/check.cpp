// CHECK: is the pod still enforced exactly as this CHECK's config says?
// Collects every difference into one CheckMismatch error.
#include <algorithm>

#include "../../bpf/podfence_abi.h"
#include "../bpf/datapath.hpp"
#include "../bpf/policy_store.hpp"
#include "../bpf/state.hpp"
#include "../cni/result.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "../netlink/netlink.hpp"
#include "../netlink/netns.hpp"
#include "backend.hpp"
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
    const std::uint32_t slot = rec.slot;
    const bpf::PolicyStore store(dp);
    auto pod = store.pod(slot);
    if (!pod || !(pod->flags & PF_POD_ACTIVE)) {
        problems.push_back("pf_pods[" + std::to_string(slot) +
                           "] is not active (the datapath treats the pod as unknown)");
        return;
    }
    auto kernel = store.read(slot);
    EntryDiff d = diff_entries(kernel, plan.entries);
    if (!d.empty())
        problems.push_back("the policy in the kernel (slot " + std::to_string(slot) + ", " +
                           std::to_string(kernel.size()) + " entries) differs from the pod's policy (" +
                           std::to_string(plan.entries.size()) + " entries): " + std::to_string(d.missing) +
                           " missing, " + std::to_string(d.unexpected) + " unexpected");
}

std::string join(const std::vector<policy::SourceAddr>& addrs) {
    std::string out;
    for (const auto& a : addrs)
        out += (out.empty() ? "" : ", ") + policy::format_source(a);
    return "[" + out + "]";
}

// The source check: the configuration, the record, prevResult and the
// kernel (PF_POD_SRC_CHECK and pf_sources) must all agree.
void check_sources(const cni::Env& env, const cni::NetConf& conf, const bpf::Datapath& dp,
                   const bpf::AttachmentRecord& rec, Problems& problems) {
    auto on_off = [](bool on) { return on ? std::string("on") : std::string("off"); };
    if (rec.source_check != conf.source_check)
        problems.push_back(
            "the source check is " + on_off(rec.source_check) +
            " for the pod, the configuration says sourceCheck: " + (conf.source_check ? "true" : "false"));
    std::vector<policy::SourceAddr> recorded;
    for (const auto& text : rec.sources) {
        if (auto a = policy::parse_source(text))
            recorded.push_back(*a);
        else
            problems.push_back("the record's source address \"" + text + "\" is not an address");
    }
    std::sort(recorded.begin(), recorded.end());
    if (rec.source_check && conf.source_check) {
        auto want = cni::pod_sources(cni::parse_result(*conf.prev_result, conf.cni_version), env.ifname);
        if (want != recorded)
            problems.push_back("prevResult gives " + env.ifname + " the addresses " + join(want) +
                               ", the source check was seeded with " + join(recorded) + " at ADD");
    }
    if (dp.sources_map() < 0) {
        if (rec.source_check)
            problems.push_back("datapath " + rec.datapath_dir +
                               " has no pf_sources map (source check missing)");
        return;
    }
    policy::PodSources kernel = bpf::PolicyStore(dp).read_sources(rec.slot);
    const std::string slot = std::to_string(rec.slot);
    if (kernel.check != rec.source_check)
        problems.push_back("pf_pods[" + slot + "] has the source check " + on_off(kernel.check) +
                           ", the pod's record says " + on_off(rec.source_check));
    if (kernel.addrs != recorded)
        problems.push_back("pf_sources holds " + join(kernel.addrs) + " for slot " + slot +
                           ", the pod's recorded addresses are " + join(recorded));
}

} // namespace

Output check(const cni::Env& env, const cni::NetConf& conf) {
    require_verb_version(cni::Verb::Check, conf);
    require_prev_result(conf);
    PolicyPlan plan = plan_policy(conf);

    const std::string& root = conf.bpffs_root;
    if (!bpf::has_state(root)) mismatch(env, {"no podfence state under " + root});
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
        backend_for(*rec)->verify(*rec, store.dir_for(env.container_id, env.ifname), problems);
    } catch (const Error& e) {
        problems.push_back(e.what());
    }
    try {
        bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
        check_slot(dp, *rec, plan, problems);
        check_sources(env, conf, dp, *rec, problems);
    } catch (const Error& e) {
        problems.push_back("pinned datapath " + rec->datapath_dir + " is unusable: " + e.what());
    }
    if (!problems.empty()) mismatch(env, problems);
    log::info("CHECK container " + env.container_id + " ifname " + env.ifname + ": ok");
    return std::nullopt;
}

} // namespace podfence::verbs
