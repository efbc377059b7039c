#include "backend.hpp"

#include <cerrno>
#include <unistd.h>

#include "../bpf/attach.hpp"
#include "../common/error.hpp"
#include "../netlink/netlink.hpp"

namespace podfence::verbs {
namespace {

class UnpinOnlyBackend final : public Backend {
public:
    void attach(AttachRequest& req) const override {
        throw Error(Code::UnsupportedField,
                    "mode " + std::string(bpf::to_string(req.rec.mode)) + " cannot be attached");
    }
    void detach(const bpf::AttachmentRecord&, const std::string& dir, Problems& errors) const override {
        unpin_all(dir, errors);
    }
    void move(AttachRequest& req) const override { attach(req); }
    void verify(const bpf::AttachmentRecord&, const std::string&, Problems& problems) const override {
        problems.add("the record's mode is unknown to this podfence (written by a newer version?)");
    }
};

} // namespace

std::unique_ptr<Backend> backend_for(const bpf::AttachmentRecord& rec) {
    switch (rec.mode) {
    case bpf::AttachMode::Tcx: return make_tcx_backend();
    case bpf::AttachMode::TcLegacy: return make_legacy_tc_backend();
    case bpf::AttachMode::XdpNative:
    case bpf::AttachMode::XdpGeneric: return make_xdp_backend();
    case bpf::AttachMode::Unknown: break;
    }
    return std::make_unique<UnpinOnlyBackend>();
}

bool same_host_link(const bpf::AttachmentRecord& rec) {
    auto l = netlink::get_link(static_cast<int>(rec.host_ifindex));
    return l && l->name == rec.host_ifname;
}

void unpin(const std::string& dir, const char* name, Problems& errors) {
    std::string path = layout::pin_path(dir, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) errors.add(failed("unlink", path, errno));
}

void unpin_links(const std::string& dir, Problems& errors) {
    // Each link is detached before its unpin: the kernel frees an unpinned
    // link later, so the stub could still run when teardown clears the slot.
    for (const char* n : {layout::kLinkEgress, layout::kLinkIngress}) {
        try {
            bpf::detach_link(layout::pin_path(dir, n));
        } catch (const Error& e) {
            errors.add(e.what());
            continue; // keep the pin: a later DEL or GC retries
        }
        unpin(dir, n, errors);
    }
}

void unpin_stubs(const std::string& dir, Problems& errors) {
    for (const char* n : {layout::kStubEgress, layout::kStubIngress})
        unpin(dir, n, errors);
}

void unpin_all(const std::string& dir, Problems& errors) {
    unpin_links(dir, errors);
    unpin_stubs(dir, errors);
}

void repin(int fd, const std::string& dir, const char* name) {
    // bpffs refuses names with a dot.
    const std::string path = layout::pin_path(dir, name),
                      tmp = layout::pin_path(dir, std::string("new_") + name);
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) throw errno_error(Code::Io, "unlink", tmp, errno);
    bpf::pin(fd, tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        (void)::unlink(tmp.c_str());
        throw errno_error(Code::Io, "rename", tmp + " -> " + path, e);
    }
}

void swap_stub(int stub, int ifindex, bpf::Hook hook, const std::string& dir, const char* link,
               bpf::XdpMode xdp_mode) {
    UniqueFd old = bpf::stub_at(ifindex, hook);
    if (UniqueFd l = bpf::obj_get(layout::pin_path(dir, link)); l && old) {
        bpf::update_link(l.get(), stub, old.get());
        return;
    }
    if (hook == bpf::Hook::Xdp)
        bpf::xdp_attach(stub, ifindex, xdp_mode, nullptr, old ? old.get() : -1);
    else
        bpf::tcx_attach(stub, ifindex, hook, old ? old.get() : -1);
}

std::uint32_t pinned_prog_id(const std::string& dir, const char* stub, Problems& problems) {
    UniqueFd fd = bpf::obj_get(layout::pin_path(dir, stub));
    if (!fd) {
        problems.add(std::string(stub) + " pin missing in " + dir);
        return 0;
    }
    return bpf::prog_id(fd.get());
}

} // namespace podfence::verbs
