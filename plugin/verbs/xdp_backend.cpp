// mode "xdp": XDP only sees what an interface receives, so the pod's egress
// is filtered on the host veth and its ingress on the pod's own interface,
// inside the pod netns.
#include <sys/stat.h>

#include "../../bpf/podfence_abi.h"
#include "../bpf/attach.hpp"
#include "../common/log.hpp"
#include "../netlink/netlink.hpp"
#include "../netlink/netns.hpp"
#include "backend.hpp"

namespace podfence::verbs {
namespace {

// The pod's ingress stub lives inside the pod netns: run f there. false
// when that netns is gone (and the interface with it).
template <typename F> bool in_pod(const bpf::AttachmentRecord& rec, F&& f) {
    struct stat st {};
    if (rec.netns.empty() || ::stat(rec.netns.c_str(), &st) != 0) return false;
    netlink::NetnsGuard ns(rec.netns);
    f();
    return true;
}

class XdpBackend final : public Backend {
public:
    void attach(AttachRequest& req) const override {
        bpf::AttachmentRecord& rec = req.rec;
        bpf::XdpMode want =
            rec.mode == bpf::AttachMode::XdpGeneric ? bpf::XdpMode::Generic : bpf::XdpMode::Native;
        bpf::XdpMode used_host = want, used_pod = want;

        // A stub left by an ADD that was killed is swapped, not refused.
        auto put = [&](const char* stub_pin, std::uint32_t dir, int ifindex, bpf::XdpMode* used) {
            UniqueFd stub = bpf::load_xdp_stub(req.dp, rec.slot, dir);
            bpf::pin(stub.get(), layout::pin_path(req.dir, stub_pin));
            UniqueFd stale = bpf::stub_at(ifindex, bpf::Hook::Xdp);
            bpf::xdp_attach(stub.get(), ifindex, want, used, stale ? stale.get() : -1);
        };
        with_context("attaching XDP to host veth " + rec.host_ifname, [&] {
            put(layout::kStubEgress, PF_DIR_EGRESS, static_cast<int>(rec.host_ifindex), &used_host);
        });
        with_context("attaching XDP to the pod's " + rec.ifname + " in " + rec.netns, [&] {
            netlink::NetnsGuard ns(rec.netns);
            put(layout::kStubIngress, PF_DIR_INGRESS, static_cast<int>(rec.pod_ifindex), &used_pod);
        });

        bool native = used_host == bpf::XdpMode::Native && used_pod == bpf::XdpMode::Native;
        rec.mode = native ? bpf::AttachMode::XdpNative : bpf::AttachMode::XdpGeneric;
        if (want == bpf::XdpMode::Native && !native)
            log::warn("xdp: native mode unavailable on " + rec.host_ifname + " or the pod's " + rec.ifname +
                      "; generic XDP in use");
    }

    void move(AttachRequest& req) const override {
        const bpf::AttachmentRecord& rec = req.rec;
        bpf::XdpMode mode =
            rec.mode == bpf::AttachMode::XdpGeneric ? bpf::XdpMode::Generic : bpf::XdpMode::Native;
        with_context("moving XDP of host veth " + rec.host_ifname, [&] {
            UniqueFd stub = bpf::load_xdp_stub(req.dp, rec.slot, PF_DIR_EGRESS);
            swap_stub(stub.get(), static_cast<int>(rec.host_ifindex), bpf::Hook::Xdp, req.dir,
                      layout::kLinkEgress, mode);
            repin(stub.get(), req.dir, layout::kStubEgress);
        });
        with_context("moving XDP of the pod's " + rec.ifname + " in " + rec.netns, [&] {
            UniqueFd stub = bpf::load_xdp_stub(req.dp, rec.slot, PF_DIR_INGRESS);
            {
                netlink::NetnsGuard ns(rec.netns);
                swap_stub(stub.get(), static_cast<int>(rec.pod_ifindex), bpf::Hook::Xdp, req.dir,
                          layout::kLinkIngress, mode);
            }
            repin(stub.get(), req.dir, layout::kStubIngress);
        });
    }

    void detach(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& errors) const override {
        unpin_links(dir, errors); // attachments of earlier versions
        try {
            UniqueFd host = stub_of(dir, layout::kStubEgress, [&] {
                return same_host_link(rec) ? bpf::stub_at(static_cast<int>(rec.host_ifindex), bpf::Hook::Xdp)
                                           : UniqueFd();
            });
            if (host) bpf::xdp_detach(host.get(), static_cast<int>(rec.host_ifindex));
            // Inside a netns that is gone there is nothing left to detach.
            in_pod(rec, [&] {
                UniqueFd pod = stub_of(dir, layout::kStubIngress, [&] {
                    return bpf::stub_at(static_cast<int>(rec.pod_ifindex), bpf::Hook::Xdp);
                });
                if (pod) bpf::xdp_detach(pod.get(), static_cast<int>(rec.pod_ifindex));
            });
        } catch (const std::exception& e) {
            errors.add("detaching XDP of " + rec.host_ifname + ": " + e.what());
            return; // keep the stub pins: a later DEL or GC retries
        }
        unpin_stubs(dir, errors);
    }

    void verify(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& problems) const override {
        auto check = [&](const char* stub, int ifindex, const std::string& where) {
            std::uint32_t id = pinned_prog_id(dir, stub, problems);
            std::uint32_t at = bpf::xdp_prog_id(ifindex);
            if (at == 0)
                problems.add("no XDP program on " + where + " (not enforced)");
            else if (id != 0 && at != id)
                problems.add("XDP on " + where + " runs program id " + std::to_string(at) +
                             ", not its stub " + std::to_string(id) + " (replaced)");
        };
        check(layout::kStubEgress, static_cast<int>(rec.host_ifindex), rec.host_ifname);
        bool ok = in_pod(rec, [&] {
            check(layout::kStubIngress, static_cast<int>(rec.pod_ifindex), "the pod's " + rec.ifname);
        });
        if (!ok) problems.add("the pod's netns " + rec.netns + " is gone");
    }

private:
    template <typename Find> static UniqueFd stub_of(const std::string& dir, const char* stub, Find&& find) {
        if (UniqueFd fd = bpf::obj_get(layout::pin_path(dir, stub))) return fd;
        return find(); // pins lost: ask the kernel
    }
};

} // namespace

std::unique_ptr<Backend> make_xdp_backend() {
    return std::make_unique<XdpBackend>();
}

} // namespace podfence::verbs
