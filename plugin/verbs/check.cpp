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
#include "upgrade.hpp"
#include "verbs.hpp"

namespace podfence::verbs {
namespace {

std::string context(const cni::Env& env) {
    return "CHECK container " + env.container_id + " ifname " + env.ifname;
}

void check_interfaces(const cni::Env& env, const bpf::AttachmentRecord& rec, Problems& problems) {
    auto host = netlink::get_link(rec.host_ifname);
    if (!host)
        problems.add("host veth " + rec.host_ifname + " is gone");
    else if (static_cast<std::uint32_t>(host->ifindex) != rec.host_ifindex)
        problems.add("host veth " + rec.host_ifname + " has ifindex " + std::to_string(host->ifindex) +
                     ", was " + std::to_string(rec.host_ifindex) + " at ADD");
    netlink::NetnsGuard in_pod(env.netns);
    auto pod = netlink::get_link(env.ifname);
    if (!pod)
        problems.add(env.ifname + " is gone from " + env.netns);
    else if (static_cast<std::uint32_t>(pod->ifindex) != rec.pod_ifindex)
        problems.add(env.ifname + " has ifindex " + std::to_string(pod->ifindex) + ", was " +
                     std::to_string(rec.pod_ifindex) + " at ADD");
}

void check_slot(const bpf::Datapath& dp, const bpf::AttachmentRecord& rec, const PolicyPlan& plan,
                Problems& problems) {
    const std::uint32_t slot = rec.slot;
    const bpf::PolicyStore store(dp);
    auto pod = store.pod(slot);
    if (!pod || !(pod->flags & PF_POD_ACTIVE)) {
        problems.add("pf_pods[" + std::to_string(slot) +
                     "] is not active (the datapath treats the pod as unknown)");
        return;
    }
    // The record says what the pod runs in (ADD, or `podfence update --enforcement` since).
    const bool audits = (pod->flags & PF_POD_AUDIT) != 0;
    if (audits != (rec.enforcement == policy::to_string(policy::Enforcement::Audit)))
        problems.add("pf_pods[" + std::to_string(slot) + "] is in " + (audits ? "audit" : "enforce") +
                     " mode, the pod's record says enforcement " + rec.enforcement);
    auto kernel = store.read(slot);
    EntryDiff d = diff_entries(kernel, plan.entries);
    if (!d.empty())
        problems.add("the policy in the kernel (slot " + std::to_string(slot) + ", " +
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
        problems.add(
            "the source check is " + on_off(rec.source_check) +
            " for the pod, the configuration says sourceCheck: " + (conf.source_check ? "true" : "false"));
    std::vector<policy::SourceAddr> recorded;
    for (const auto& text : rec.sources) {
        if (auto a = policy::parse_source(text))
            recorded.push_back(*a);
        else
            problems.add("the record's source address \"" + text + "\" is not an address");
    }
    std::sort(recorded.begin(), recorded.end());
    if (rec.source_check && conf.source_check) {
        auto want = cni::pod_sources(cni::parse_result(*conf.prev_result, conf.cni_version), env.ifname);
        if (want != recorded)
            problems.add("prevResult gives " + env.ifname + " the addresses " + join(want) +
                         ", the source check was seeded with " + join(recorded) + " at ADD");
    }
    if (dp.sources_map() < 0) {
        if (rec.source_check)
            problems.add("datapath " + rec.datapath_dir + " has no pf_sources map (source check missing)");
        return;
    }
    policy::PodSources kernel = bpf::PolicyStore(dp).read_sources(rec.slot);
    const std::string slot = std::to_string(rec.slot);
    if (kernel.check != rec.source_check)
        problems.add("pf_pods[" + slot + "] has the source check " + on_off(kernel.check) +
                     ", the pod's record says " + on_off(rec.source_check));
    if (kernel.addrs != recorded)
        problems.add("pf_sources holds " + join(kernel.addrs) + " for slot " + slot +
                     ", the pod's recorded addresses are " + join(recorded));
}

// What the kernel still enforces for a pod whose pins are gone.
std::string kernel_side(const bpf::AttachmentRecord& rec) {
    const int host = static_cast<int>(rec.host_ifindex);
    bool held = false;
    try {
        switch (rec.mode) {
        case bpf::AttachMode::Tcx:
            held = bpf::stub_at(host, bpf::Hook::TcxIngress) && bpf::stub_at(host, bpf::Hook::TcxEgress);
            break;
        case bpf::AttachMode::TcLegacy:
            held = netlink::bpf_filter_prog_id(host, true) && netlink::bpf_filter_prog_id(host, false);
            break;
        case bpf::AttachMode::XdpNative:
        case bpf::AttachMode::XdpGeneric: held = static_cast<bool>(bpf::stub_at(host, bpf::Hook::Xdp)); break;
        case bpf::AttachMode::Unknown: break;
        }
    } catch (const std::exception& e) {
        return std::string("; what the kernel has on ") + rec.host_ifname + " is unknown: " + e.what();
    }
    return held ? "; the kernel still runs its stubs on " + rec.host_ifname + ", so it stays filtered"
                : "; NO podfence program is left on " + rec.host_ifname;
}

} // namespace

Output check(const cni::Env& env, const cni::NetConf& conf) {
    require_verb_version(cni::Verb::Check, conf);
    require_prev_result(conf);
    PolicyPlan plan = plan_policy(conf);

    const std::string& root = conf.bpffs_root;
    if (auto lost = bpf::StateStore(root).find_lost(env.container_id, env.ifname))
        throw Error(Code::CheckMismatch,
                    context(env) + ": its pins under " + root +
                        " are gone (bpffs unmounted or pins deleted), its record survives in " +
                        bpf::layout::mirror_dir(root) + kernel_side(*lost) +
                        "; run podfence repair --bpffs-root " + root);
    if (!bpf::has_state(root))
        throw Error(Code::CheckMismatch, context(env) + ": no podfence state under " + root);
    bpf::NodeLock lock(root, std::chrono::seconds(conf.lock_timeout_seconds));
    upgrade_if_needed(root);
    bpf::StateStore store(root);
    auto rec = store.find(env.container_id, env.ifname);
    if (!rec) throw Error(Code::CheckMismatch, context(env) + ": no podfence attachment recorded");
    Problems problems;
    if (bpf::is_xdp(rec->mode) != (conf.mode == cni::Mode::Xdp))
        problems.add("attached in mode " + std::string(bpf::to_string(rec->mode)) +
                     ", the configuration says " + std::string(cni::to_string(conf.mode)));
    try {
        check_interfaces(env, *rec, problems);
        backend_for(*rec)->verify(*rec, store.dir_for(env.container_id, env.ifname), problems);
    } catch (const Error& e) {
        problems.add(e.what());
    }
    try {
        bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
        check_slot(dp, *rec, plan, problems);
        check_sources(env, conf, dp, *rec, problems);
    } catch (const Error& e) {
        problems.add("pinned datapath " + rec->datapath_dir + " is unusable: " + e.what());
    }
    problems.raise(Code::CheckMismatch, context(env));
    log::info("CHECK container " + env.container_id + " ifname " + env.ifname + ": ok");
    return std::nullopt;
}

} // namespace podfence::verbs
