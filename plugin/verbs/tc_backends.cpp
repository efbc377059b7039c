// mode "tc": the stubs run on the host veth, which sees both directions.
// tcx (BPF links, kernel >= 6.6) or, without it, clsact + cls_bpf.
#include <algorithm>

#include "../../bpf/podfence_abi.h"
#include "../bpf/attach.hpp"
#include "../common/error.hpp"
#include "../common/log.hpp"
#include "../netlink/netlink.hpp"
#include "backend.hpp"

namespace podfence::verbs {
namespace {

// Host veth ingress = packets the pod sends (PF_DIR_EGRESS) and vice versa.
struct TcHook {
    const char* link;
    const char* stub;
    std::uint32_t dir;
    bpf::Hook hook;
    bool tc_ingress; // legacy clsact hook
    const char* name;
};
constexpr TcHook kTcHooks[] = {
    {layout::kLinkEgress, layout::kStubEgress, PF_DIR_EGRESS, bpf::Hook::TcxIngress, true, "ingress"},
    {layout::kLinkIngress, layout::kStubIngress, PF_DIR_INGRESS, bpf::Hook::TcxEgress, false, "egress"},
};

std::string where(const bpf::AttachmentRecord& rec, const TcHook& h, const char* kind) {
    return std::string(kind) + " " + h.name + " of " + rec.host_ifname;
}

class TcxBackend final : public Backend {
public:
    void attach(AttachRequest& req) const override {
        int ifindex = static_cast<int>(req.rec.host_ifindex);
        for (const TcHook& h : kTcHooks) {
            with_context("attaching " + where(req.rec, h, "tcx"), [&] {
                UniqueFd stub = bpf::load_tc_stub(req.dp, req.rec.slot, h.dir);
                bpf::pin(stub.get(), layout::pin_path(req.dir, h.stub));
                // A stub left by an ADD that was killed is swapped, not stacked.
                UniqueFd stale = bpf::stub_at(ifindex, h.hook);
                bpf::tcx_attach(stub.get(), ifindex, h.hook, stale ? stale.get() : -1);
            });
        }
    }

    void detach(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& errors) const override {
        unpin_links(dir, errors); // attachments of earlier versions
        int ifindex = static_cast<int>(rec.host_ifindex);
        for (const TcHook& h : kTcHooks) {
            try {
                if (UniqueFd stub = stub_of(rec, dir, h.stub, h.hook))
                    bpf::tcx_detach(stub.get(), ifindex, h.hook);
            } catch (const std::exception& e) {
                errors.add(std::string("detaching ") + where(rec, h, "tcx") + ": " + e.what());
                return; // keep the stub pins: a later DEL or GC retries
            }
        }
        unpin_stubs(dir, errors);
    }

    void move(AttachRequest& req) const override {
        int ifindex = static_cast<int>(req.rec.host_ifindex);
        for (const TcHook& h : kTcHooks) {
            with_context("moving " + where(req.rec, h, "tcx"), [&] {
                UniqueFd stub = bpf::load_tc_stub(req.dp, req.rec.slot, h.dir);
                swap_stub(stub.get(), ifindex, h.hook, req.dir, h.link);
                repin(stub.get(), req.dir, h.stub);
            });
        }
    }

    void verify(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& problems) const override {
        for (const TcHook& h : kTcHooks) {
            std::uint32_t id = pinned_prog_id(dir, h.stub, problems);
            auto ids = bpf::tcx_prog_ids(static_cast<int>(rec.host_ifindex), h.hook);
            if (id != 0 && std::find(ids.begin(), ids.end(), id) == ids.end())
                problems.add(std::string(h.stub) + " (program id " + std::to_string(id) +
                             ") is not among the programs at " + where(rec, h, "tcx") + " (not enforced)");
        }
    }

private:
    // The pinned stub, or (pins lost) the podfence stub the kernel has at
    // the hook, if the veth is still the pod's.
    static UniqueFd stub_of(const bpf::AttachmentRecord& rec, const std::string& dir, const char* stub,
                            bpf::Hook hook) {
        if (UniqueFd fd = bpf::obj_get(layout::pin_path(dir, stub))) return fd;
        if (!same_host_link(rec)) return UniqueFd();
        return bpf::stub_at(static_cast<int>(rec.host_ifindex), hook);
    }
};

class LegacyTcBackend final : public Backend {
public:
    void attach(AttachRequest& req) const override {
        int ifindex = static_cast<int>(req.rec.host_ifindex);
        with_context("adding a clsact qdisc to " + req.rec.host_ifname, [&] {
            // Recorded BEFORE the qdisc exists: a verb killed right after
            // creating it leaves a record that still says it is ours. (DEL
            // removes it only if present and without filters.)
            if (!netlink::has_clsact(ifindex)) {
                req.rec.legacy_qdisc_created = true;
                req.save();
            }
            if (!netlink::ensure_clsact(ifindex) && req.rec.legacy_qdisc_created) {
                req.rec.legacy_qdisc_created = false; // someone else's appeared meanwhile
                req.save();
            }
        });
        for (const TcHook& h : kTcHooks) {
            with_context("attaching " + where(req.rec, h, "tc"), [&] {
                UniqueFd stub = bpf::load_tc_stub(req.dp, req.rec.slot, h.dir);
                bpf::pin(stub.get(), layout::pin_path(req.dir, h.stub));
                netlink::add_bpf_filter(ifindex, h.tc_ingress, stub.get(), "pf_stub_tc");
            });
        }
    }

    void detach(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& errors) const override {
        int ifindex = static_cast<int>(rec.host_ifindex);
        try {
            if (!same_host_link(rec)) {
                log::info("legacy tc: " + rec.host_ifname + " (ifindex " + std::to_string(rec.host_ifindex) +
                          ") is gone; its filters went with it");
            } else {
                for (const TcHook& h : kTcHooks)
                    netlink::delete_bpf_filter(ifindex, h.tc_ingress);
                // Only a clsact podfence created, and only once nobody else filters there.
                if (rec.legacy_qdisc_created && netlink::has_clsact(ifindex) &&
                    netlink::count_filters(ifindex, true) == 0 && netlink::count_filters(ifindex, false) == 0)
                    netlink::delete_clsact(ifindex);
            }
        } catch (const std::exception& e) {
            errors.add(std::string("legacy tc on ") + rec.host_ifname + ": " + e.what());
        }
        unpin_all(dir, errors);
    }

    void move(AttachRequest& req) const override {
        int ifindex = static_cast<int>(req.rec.host_ifindex);
        for (const TcHook& h : kTcHooks) {
            with_context("moving " + where(req.rec, h, "tc"), [&] {
                UniqueFd stub = bpf::load_tc_stub(req.dp, req.rec.slot, h.dir);
                // Same handle and priority: the kernel swaps the program in place.
                netlink::add_bpf_filter(ifindex, h.tc_ingress, stub.get(), "pf_stub_tc");
                repin(stub.get(), req.dir, h.stub);
            });
        }
    }

    void verify(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& problems) const override {
        for (const TcHook& h : kTcHooks) {
            std::uint32_t id = pinned_prog_id(dir, h.stub, problems);
            auto cur = netlink::bpf_filter_prog_id(static_cast<int>(rec.host_ifindex), h.tc_ingress);
            if (!cur)
                problems.add("no podfence cls_bpf filter at " + where(rec, h, "tc"));
            else if (id != 0 && *cur != id)
                problems.add("the podfence filter at " + where(rec, h, "tc") + " runs program id " +
                             std::to_string(*cur) + ", not its stub " + std::to_string(id) + " (replaced)");
        }
    }
};

} // namespace

std::unique_ptr<Backend> make_tcx_backend() {
    return std::make_unique<TcxBackend>();
}
std::unique_ptr<Backend> make_legacy_tc_backend() {
    return std::make_unique<LegacyTcBackend>();
}

} // namespace podfence::verbs
