#include "backend.hpp"

#include <cerrno>
#include <unistd.h>

#include "../bpf/attach.hpp"
#include "../common/error.hpp"

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

void unpin(const std::string& dir, const char* name, Problems& errors) {
    std::string path = layout::pin_path(dir, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) errors.add(failed("unlink", path, errno));
}

void unpin_all(const std::string& dir, Problems& errors) {
    // Links first, each detached before its unpin: the kernel frees an
    // unpinned link later, so the stub could still run when teardown clears
    // the slot.
    for (const char* n : {layout::kLinkEgress, layout::kLinkIngress}) {
        try {
            bpf::detach_link(layout::pin_path(dir, n));
        } catch (const Error& e) {
            errors.add(e.what());
            continue; // keep the pin: a later DEL or GC retries
        }
        unpin(dir, n, errors);
    }
    for (const char* n : {layout::kStubEgress, layout::kStubIngress})
        unpin(dir, n, errors);
}

std::uint32_t pinned_prog_id(const std::string& dir, const char* stub, Problems& problems) {
    UniqueFd fd = bpf::obj_get(layout::pin_path(dir, stub));
    if (!fd) {
        problems.add(std::string(stub) + " pin missing in " + dir);
        return 0;
    }
    return bpf::prog_id(fd.get());
}

std::uint32_t verify_pinned_link(const std::string& dir, const char* link, const char* stub,
                                 std::uint32_t want_ifindex, const std::string& where, Problems& problems) {
    std::uint32_t stub_id = pinned_prog_id(dir, stub, problems);
    UniqueFd fd = bpf::obj_get(layout::pin_path(dir, link));
    if (!fd) {
        problems.add(std::string(link) + " pin missing in " + dir + " (" + where + " not enforced)");
        return stub_id;
    }
    bpf::LinkState st = bpf::link_state(fd.get());
    if (st.ifindex == 0) {
        problems.add(std::string(link) + " (" + where + ") is detached");
    } else if (st.ifindex != want_ifindex) {
        problems.add(std::string(link) + " (" + where + ") is on ifindex " + std::to_string(st.ifindex) +
                     ", expected " + std::to_string(want_ifindex));
    }
    if (stub_id != 0 && st.prog_id != stub_id)
        problems.add(std::string(link) + " (" + where + ") runs program id " + std::to_string(st.prog_id) +
                     ", not its stub " + std::to_string(stub_id) + " (replaced)");
    return stub_id;
}

} // namespace podfence::verbs
