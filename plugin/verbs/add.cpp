// ADD: validate everything, then attach the pod's stubs with its policy.
// Fail closed: any failure after the first change undoes this ADD entirely.
#include "../bpf/datapath.hpp"
#include "../bpf/policy_store.hpp"
#include "../bpf/state.hpp"
#include "../cni/result.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "backend.hpp"
#include "prepare.hpp"
#include "teardown.hpp"
#include "upgrade.hpp"
#include "verbs.hpp"
#include "veth.hpp"

namespace podfence::verbs {
namespace {

// Tears the attachment down unless the ADD committed. rec is read at
// destruction, so it sees whatever the backend recorded so far.
class Rollback {
public:
    Rollback(bpf::StateStore& store, const bpf::AttachmentRecord& rec) : store_(store), rec_(rec) {}
    Rollback(const Rollback&) = delete;
    Rollback& operator=(const Rollback&) = delete;
    ~Rollback() {
        if (committed_) return;
        log::warn("ADD failed: rolling back container " + rec_.container_id + " ifname " + rec_.ifname);
        Problems ignored; // teardown logs its own failures
        teardown(store_, rec_, ignored);
    }
    void commit() { committed_ = true; }

private:
    bpf::StateStore& store_;
    const bpf::AttachmentRecord& rec_;
    bool committed_ = false;
};

} // namespace

Output add(const cni::Env& env, const cni::NetConf& conf) {
    // 1. Everything that can be checked without changing the system.
    cni::Result prev = require_prev_result(conf);
    PolicyPlan plan = plan_policy(conf);
    policy::PodSources sources{conf.source_check, {}};
    if (sources.check) {
        sources.addrs = cni::pod_sources(prev, env.ifname);
        bpf::PolicyStore::require_source_capacity(sources.addrs.size(), env.ifname);
        if (sources.addrs.empty())
            log::warn("source check: prevResult gives " + env.ifname +
                      " no address; it may send only from 0.0.0.0, :: and fe80::/64");
    }
    VethPair veth = find_veth(env.netns, env.ifname, prev);

    bpf::AttachmentRecord rec;
    rec.container_id = env.container_id;
    rec.ifname = env.ifname;
    rec.network = conf.name;
    rec.netns = env.netns;
    rec.pod_namespace = env.pod.namespace_;
    rec.pod_name = env.pod.name;
    rec.pod_uid = env.pod.uid;
    rec.mode = attach_mode_for(conf);
    rec.host_ifname = veth.host.name;
    rec.host_ifindex = static_cast<std::uint32_t>(veth.host.ifindex);
    rec.pod_ifindex = static_cast<std::uint32_t>(veth.pod.ifindex);
    rec.policy_json = plan.canonical_json;
    rec.enforcement = std::string(policy::to_string(plan.enforcement));
    rec.source_check = sources.check;
    for (const auto& a : sources.addrs)
        rec.sources.push_back(policy::format_source(a));
    log::info("ADD container " + env.container_id + " ifname " + env.ifname +
              (env.pod.qualified().empty() ? "" : " (pod " + env.pod.qualified() + ")") + ": host veth " +
              rec.host_ifname + ", mode " + std::string(bpf::to_string(rec.mode)) + ", policy " +
              (plan.from_annotation ? "from annotation" : "defaultPolicy") + " (" +
              std::to_string(plan.entries.size()) + " policy map entries), source check " +
              (sources.check ? "on (" + std::to_string(sources.addrs.size()) + " addresses)" : "off") + ", " +
              rec.enforcement);

    // 2. The system.
    const std::string& root = conf.bpffs_root;
    const bool lost = !bpf::has_state(root); // a first ADD, or the bpffs was lost
    bpf::ensure_bpffs(root);
    bpf::NodeLock lock(root, std::chrono::seconds(conf.lock_timeout_seconds));
    bpf::StateStore store(root);
    if (lost && store.has_copies()) repair_if_needed(store, root);
    upgrade_if_needed(root); // pods of an earlier podfence move to this binary's datapath
    auto old = store.find(env.container_id, env.ifname);
    // Or only its record's copy: a DEL killed after unpinning it. Its slot is
    // still claimed until that copy goes.
    if (!old && (old = store.find_lost(env.container_id, env.ifname)))
        log::info("re-ADD: the previous attachment's pins are gone, its record's copy is left");
    if (old) {
        log::info("re-ADD: removing the previous attachment first");
        Problems left;
        if (!teardown(store, *old, left))
            left.raise(Code::Io, "re-ADD: the previous attachment could not be removed");
    }
    bpf::Datapath dp = bpf::Datapath::open_or_load(root);
    bpf::PolicyStore policies(dp);
    rec.datapath_dir = dp.dir();
    {
        // What a killed ADD of this pod left: a directory without its record,
        // and a claimed slot no record names.
        if (store.remove_orphan(env.container_id, env.ifname))
            log::info("ADD: removed an attachment directory without a record (left by a killed verb)");
        Problems left; // a slot that stays claimed is only one slot less: logged, not fatal
        release_unreferenced_slots(store, left, true, &policies);
        for (const auto& e : left.list())
            log::warn("ADD: " + e);
    }
    // Claimed before any record names it: no other pod can get this slot
    // while a DEL of this one (after a kill, say) may still clear it.
    rec.slot = policies.claim_slot(slots_elsewhere(root, dp.dir()));

    Rollback rollback(store, rec);
    // The record first: a crash from here on leaves something DEL/GC can find.
    const std::string dir = store.create(rec);
    // Sources before replace() activates the slot: fail closed, the pod is
    // never active without its addresses.
    policies.set_sources(rec.slot, sources);
    rec.rev = policies.replace(rec.slot, plan.entries, 0, plan.enforcement == policy::Enforcement::Audit);
    AttachRequest req{dp, rec, dir, [&] { store.update(rec); }};
    backend_for(rec)->attach(req);
    store.update(rec);
    rollback.commit();
    log::info("ADD done: slot " + std::to_string(rec.slot) + " rev " + std::to_string(rec.rev));
    return cni::convert_result(*conf.prev_result, conf.cni_version);
}

} // namespace podfence::verbs
