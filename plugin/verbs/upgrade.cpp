#include "upgrade.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "../../bpf/podfence_abi.h"
#include "../bpf/layout.hpp"
#include "../bpf/pins.hpp"
#include "../bpf/policy_store.hpp"
#include "../common/log.hpp"
#include "../policy/compile.hpp"
#include "../policy/policy.hpp"
#include "../policy/sources.hpp"
#include "../netlink/netlink.hpp"
#include "backend.hpp"

namespace podfence::verbs {
namespace {

namespace fs = std::filesystem;

bool datapath_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string who(const bpf::AttachmentRecord& rec) {
    return rec.container_id + "/" + rec.ifname;
}

policy::PodSources sources_of(const bpf::AttachmentRecord& rec) {
    policy::PodSources s{rec.source_check, {}};
    for (const auto& text : rec.sources) {
        auto a = policy::parse_source(text);
        if (!a)
            throw Error(Code::Decode,
                        "record of " + who(rec) + ": source \"" + text + "\" is not an address");
        s.addrs.push_back(*a);
    }
    return s;
}

} // namespace

std::vector<std::string> datapath_names(const std::string& root) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(bpf::layout::podfence_dir(root), ec))
        if (bpf::layout::is_datapath_name(e.path().filename().string()))
            out.push_back(e.path().filename().string());
    return out;
}

bool other_datapaths(const std::string& root) {
    const std::string mine = bpf::embedded_datapath_name();
    auto names = datapath_names(root);
    return std::any_of(names.begin(), names.end(), [&](const auto& n) { return n != mine; });
}

std::set<std::uint32_t> slots_elsewhere(const std::string& root, const std::string& except_dir) {
    std::set<std::uint32_t> out;
    const std::string except = fs::path(except_dir).filename().string();
    for (const auto& n : datapath_names(root)) {
        if (n == except) continue;
        try {
            bpf::Datapath dp = bpf::Datapath::open_dir(bpf::layout::datapath_dir(root, n));
            out.merge(bpf::PolicyStore(dp).used_slots());
        } catch (const std::exception& e) {
            log::warn("slots of datapath " + n + ": " + e.what());
        }
    }
    return out;
}

void move_attachment(bpf::StateStore& store, bpf::AttachmentRecord& rec, const bpf::Datapath& dp,
                     bool repair) {
    const bool resuming = !rec.previous_datapath_dir.empty();
    if (rec.datapath_dir == dp.dir() && !resuming && !repair) return;
    std::string from_dir = resuming ? rec.previous_datapath_dir : rec.datapath_dir;
    if (from_dir == dp.dir()) from_dir.clear(); // a repair in place: no other slot to clear
    const std::uint32_t from_slot = resuming ? rec.previous_slot : rec.slot;
    // Everything that can fail without touching the system, first.
    const policy::Policy pol = policy::parse_policy(rec.policy_json);
    const auto entries = policy::compile(pol);
    const policy::PodSources sources = sources_of(rec);
    const auto enforcement = policy::parse_enforcement(rec.enforcement);
    if (!enforcement)
        throw Error(Code::Decode, "record of " + who(rec) + ": enforcement \"" + rec.enforcement +
                                      "\" is not enforce or audit");

    std::optional<bpf::Datapath> from; // absent when its pins were lost (repair)
    if (datapath_exists(from_dir)) from.emplace(bpf::Datapath::open_dir(from_dir));
    bpf::PolicyStore to(dp);
    std::uint32_t slot = rec.slot;
    if (rec.datapath_dir != dp.dir()) {
        // The same number keeps the pod's conntrack entries (keyed by slot).
        slot = to.used_slots().count(from_slot) ? to.allocate_slot(slots_elsewhere(store.root(), dp.dir()))
                                                : from_slot;
    }
    to.claim(slot); // before the record names it (teardown.hpp)
    // Above the old revision: the conntrack entries it shares were
    // validated against that one, and must be re-validated.
    std::uint32_t old_rev = rec.rev;
    if (from) old_rev = std::max(old_rev, bpf::PolicyStore(*from).pod(from_slot).value_or(pf_pod{}).rev);

    // 1. The record first: a verb killed from here on finds the move and
    // finishes it, and a DEL clears both slots.
    rec.previous_datapath_dir = from_dir;
    rec.previous_slot = from_slot;
    rec.datapath_dir = dp.dir();
    rec.slot = slot;
    store.update(rec);
    // 2. The new slot, complete and active before any stub runs it; its
    // IPv4 flows found where a datapath before ABI 6 kept them.
    if (!from_dir.empty()) bpf::adopt_wide_ipv4_flows(dp, from ? &*from : nullptr, from_dir);
    to.set_sources(slot, sources);
    rec.rev = to.replace(slot, entries, old_rev, *enforcement == policy::Enforcement::Audit);
    // 3. The stubs, swapped in place on every hook.
    const std::string dir = store.dir_for(rec.container_id, rec.ifname);
    AttachRequest req{dp, rec, dir, [&] { store.update(rec); }};
    backend_for(rec)->move(req);
    // 4. Nothing runs the old slot any more.
    if (from)
        bpf::PolicyStore(*from).clear(from_slot, slot == from_slot ? &dp : nullptr,
                                      bpf::PolicyStore::After::Claimed);
    rec.previous_datapath_dir.clear();
    rec.previous_slot = 0;
    store.update(rec);
    if (from) bpf::PolicyStore(*from).release(from_slot); // no record names it any more
    log::info("moved " + who(rec) + " from " + from_dir + " (slot " + std::to_string(from_slot) + ") to " +
              dp.dir() + " (slot " + std::to_string(slot) + ", rev " + std::to_string(rec.rev) + ")");
}

void remove_unused_datapaths(const std::string& root, const std::vector<bpf::AttachmentRecord>& records,
                             Problems& errors) {
    std::set<std::string> used;
    for (const auto& r : records) {
        used.insert(fs::path(r.datapath_dir).filename().string());
        if (!r.previous_datapath_dir.empty())
            used.insert(fs::path(r.previous_datapath_dir).filename().string());
    }
    const std::string current = bpf::embedded_datapath_name();
    std::vector<std::string> keep(used.begin(), used.end());
    keep.push_back(current);
    bpf::remove_backup_pins(root, keep);
    for (const auto& name : datapath_names(root)) {
        if (name == current || used.count(name)) continue;
        const std::string path = bpf::layout::datapath_dir(root, name);
        std::error_code rm;
        fs::remove_all(path, rm);
        if (rm)
            errors.add("removing unused datapath " + path + ": " + rm.message());
        else
            log::info("removed unused datapath " + path);
    }
}

UpgradeReport upgrade_all(bpf::StateStore& store, const std::string& root) {
    UpgradeReport report;
    const std::string mine = bpf::layout::datapath_dir(root, bpf::embedded_datapath_name());
    std::vector<bpf::AttachmentRecord> to_move;
    for (auto& rec : store.list()) {
        if (rec.datapath_dir == mine && rec.previous_datapath_dir.empty()) continue;
        const unsigned abi = bpf::layout::datapath_abi(rec.datapath_dir);
        if (abi > PF_ABI_VERSION) {
            report.refused.push_back(who(rec) + " is on " + rec.datapath_dir + " (ABI " +
                                     std::to_string(abi) + "), newer than this podfence's ABI " +
                                     std::to_string(PF_ABI_VERSION) +
                                     ": downgrading a datapath is not supported; keep the newer podfence, or "
                                     "re-create the pod");
            continue;
        }
        to_move.push_back(std::move(rec));
    }
    // Loaded only when a pod moves to it: a refused downgrade leaves nothing.
    std::optional<bpf::Datapath> dp;
    if (!to_move.empty()) dp.emplace(bpf::Datapath::open_or_load(root));
    for (auto& rec : to_move) {
        try {
            move_attachment(store, rec, *dp);
            report.moved.push_back(who(rec));
        } catch (const std::exception& e) {
            report.errors.add("moving " + who(rec) + " to " + dp->dir() + ": " + e.what());
        }
    }
    remove_unused_datapaths(root, store.list(), report.errors);
    return report;
}

namespace {

// The podfence stub the kernel runs for rec on its host veth, if any.
UniqueFd live_stub(const bpf::AttachmentRecord& rec) {
    const int host = static_cast<int>(rec.host_ifindex);
    switch (rec.mode) {
    case bpf::AttachMode::Tcx: return bpf::stub_at(host, bpf::Hook::TcxIngress);
    case bpf::AttachMode::XdpNative:
    case bpf::AttachMode::XdpGeneric: return bpf::stub_at(host, bpf::Hook::Xdp);
    case bpf::AttachMode::TcLegacy:
        if (auto id = netlink::bpf_filter_prog_id(host, true)) return bpf::prog_by_id(*id);
        break;
    case bpf::AttachMode::Unknown: break;
    }
    return UniqueFd();
}

} // namespace

RepairReport repair_all(bpf::StateStore& store, const std::string& root) {
    RepairReport report;
    std::vector<bpf::AttachmentRecord> lost = store.list_lost();
    // Pinned records whose stub pins or datapath were deleted.
    for (auto& rec : store.list()) {
        const std::string dir = store.dir_for(rec.container_id, rec.ifname);
        if (!datapath_exists(rec.datapath_dir) ||
            !bpf::obj_get(bpf::layout::pin_path(dir, bpf::layout::kStubEgress)) ||
            !bpf::obj_get(bpf::layout::pin_path(dir, bpf::layout::kStubIngress)))
            lost.push_back(std::move(rec));
    }
    if (lost.empty()) return report;
    std::vector<std::pair<bpf::Map, UniqueFd>> share;
    for (const auto& rec : lost) {
        try {
            if (UniqueFd stub = live_stub(rec); stub && same_host_link(rec))
                share = bpf::maps_behind_stub(stub.get());
        } catch (const std::exception& e) {
            log::warn("repair: the maps behind " + who(rec) + "'s stub: " + e.what());
        }
        if (!share.empty()) break;
    }
    bpf::Datapath dp = bpf::Datapath::open_or_load(root, std::move(share));
    for (auto& rec : lost) {
        try {
            if (!same_host_link(rec))
                throw Error(Code::UnknownContainer,
                            "its host veth " + rec.host_ifname + " (ifindex " +
                                std::to_string(rec.host_ifindex) +
                                ") is gone: the pod was deleted; its DEL removes the copy");
            store.create(rec);
            move_attachment(store, rec, dp, true);
            report.repaired.push_back(who(rec));
        } catch (const std::exception& e) {
            report.errors.add("repairing " + who(rec) + ": " + e.what());
        }
    }
    remove_unused_datapaths(root, store.list(), report.errors);
    return report;
}

void repair_if_needed(bpf::StateStore& store, const std::string& root) {
    try {
        RepairReport r = repair_all(store, root);
        if (!r.repaired.empty())
            log::warn("the bpffs at " + root + " was lost: restored " + std::to_string(r.repaired.size()) +
                      " attachment(s) from the kernel and their record copies");
        for (const auto& e : r.errors.list())
            log::error("repair: " + e);
    } catch (const std::exception& e) {
        log::error(std::string("repair: ") + e.what() + " (run podfence repair)");
    }
}

void upgrade_if_needed(const std::string& root) {
    try {
        if (!other_datapaths(root)) return;
        bpf::StateStore store(root);
        UpgradeReport r = upgrade_all(store, root);
        if (!r.moved.empty())
            log::info("datapath upgrade: moved " + std::to_string(r.moved.size()) + " attachment(s) to " +
                      bpf::embedded_datapath_name());
        for (const auto& m : r.refused)
            log::warn("datapath upgrade: " + m);
        for (const auto& e : r.errors.list())
            log::error("datapath upgrade: " + e + " (the pod stays on its datapath; see podfence upgrade)");
    } catch (const std::exception& e) {
        log::error(std::string("datapath upgrade: ") + e.what() + " (pods stay on their datapaths)");
    }
}

} // namespace podfence::verbs
