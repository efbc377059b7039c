// mode "xdp": XDP only sees what an interface receives, so the pod's egress
// is filtered on the host veth and its ingress on the pod's own interface,
// inside the pod netns.
#include "../../bpf/podfence_abi.h"
#include "../bpf/attach.hpp"
#include "../common/log.hpp"
#include "../netlink/netns.hpp"
#include "backend.hpp"

namespace podfence::verbs {
namespace {

class XdpBackend final : public Backend {
public:
    void attach(AttachRequest& req) const override {
        bpf::AttachmentRecord& rec = req.rec;
        bpf::XdpMode want =
            rec.mode == bpf::AttachMode::XdpGeneric ? bpf::XdpMode::Generic : bpf::XdpMode::Native;
        bpf::XdpMode used_host = want, used_pod = want;

        with_context("attaching XDP to host veth " + rec.host_ifname, [&] {
            UniqueFd stub = bpf::load_xdp_stub(req.dp, rec.slot, PF_DIR_EGRESS);
            bpf::pin(stub.get(), layout::pin_path(req.dir, layout::kStubEgress));
            UniqueFd link = bpf::attach_xdp(stub.get(), static_cast<int>(rec.host_ifindex), want, &used_host);
            bpf::pin(link.get(), layout::pin_path(req.dir, layout::kLinkEgress));
        });
        with_context("attaching XDP to the pod's " + rec.ifname + " in " + rec.netns, [&] {
            UniqueFd stub = bpf::load_xdp_stub(req.dp, rec.slot, PF_DIR_INGRESS);
            bpf::pin(stub.get(), layout::pin_path(req.dir, layout::kStubIngress));
            UniqueFd link;
            {
                netlink::NetnsGuard in_pod(rec.netns);
                link = bpf::attach_xdp(stub.get(), static_cast<int>(rec.pod_ifindex), want, &used_pod);
            }
            bpf::pin(link.get(), layout::pin_path(req.dir, layout::kLinkIngress));
        });

        bool native = used_host == bpf::XdpMode::Native && used_pod == bpf::XdpMode::Native;
        rec.mode = native ? bpf::AttachMode::XdpNative : bpf::AttachMode::XdpGeneric;
        if (want == bpf::XdpMode::Native && !native)
            log::warn("xdp: native mode unavailable on " + rec.host_ifname + " or the pod's " + rec.ifname +
                      "; generic XDP in use");
    }

    void detach(const bpf::AttachmentRecord&, const std::string& dir, Problems& errors) const override {
        // Inside a netns that is gone there is nothing left to detach
        // (ENOLINK, which detach_link accepts).
        unpin_all(dir, errors);
    }

    void verify(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& problems) const override {
        verify_pinned_link(dir, layout::kLinkEgress, layout::kStubEgress, rec.host_ifindex,
                           "xdp on " + rec.host_ifname, problems);
        verify_pinned_link(dir, layout::kLinkIngress, layout::kStubIngress, rec.pod_ifindex,
                           "xdp on the pod's " + rec.ifname, problems);
    }
};

} // namespace

std::unique_ptr<Backend> make_xdp_backend() {
    return std::make_unique<XdpBackend>();
}

} // namespace podfence::verbs
