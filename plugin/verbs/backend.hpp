// How a pod's stubs get onto its interfaces. The verbs speak only this
// interface; tcx, legacy tc (clsact + cls_bpf) and XDP each implement it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../bpf/datapath.hpp"
#include "../bpf/layout.hpp"
#include "../bpf/links.hpp"
#include "../bpf/state.hpp"
#include "../cni/netconf.hpp"
#include "../common/error.hpp"

namespace podfence::verbs {

namespace layout = bpf::layout; // pin names and paths in an attachment directory

struct AttachRequest {
    const bpf::Datapath& dp;
    bpf::AttachmentRecord&
        rec;         // mode (as wanted), slot, netns and ifindexes set; the backend records what it did
    std::string dir; // attachment directory (pins go here)
    std::function<void()> save; // persists rec: call before creating state no pin can find
};

class Backend {
public:
    virtual ~Backend() = default;
    // Loads the stubs, attaches and pins them. Throws; the caller rolls back
    // with detach(), which must cope with any prefix of attach() done.
    virtual void attach(AttachRequest& req) const = 0;
    // Removes what attach() created. Never throws: failures are appended.
    virtual void detach(const bpf::AttachmentRecord& rec, const std::string& dir, Problems& errors) const = 0;
    // Moves the attachment to req.dp (an upgrade or a repair): loads stubs
    // for it and swaps each hook's podfence program for its new stub in one
    // step (never detach + attach: no packet passes unfiltered), then pins
    // the new stubs. A hook that lost its stub gets the new one. Throws.
    virtual void move(AttachRequest& req) const = 0;
    // Appends one message per way the live attachment differs from rec.
    virtual void verify(const bpf::AttachmentRecord& rec, const std::string& dir,
                        Problems& problems) const = 0;
};

// By rec.mode. AttachMode::Unknown (a newer binary's record) gets a backend
// that only unpins, so DEL still cleans what it can.
std::unique_ptr<Backend> backend_for(const bpf::AttachmentRecord& rec);

std::unique_ptr<Backend> make_tcx_backend();
std::unique_ptr<Backend> make_legacy_tc_backend();
std::unique_ptr<Backend> make_xdp_backend();

// ---- helpers shared by the backends ----
// Runs f; an Error it throws gets `context` prepended (same code), so the
// operator learns which pod and hook failed, not just the syscall.
template <typename F> void with_context(const std::string& context, F&& f) {
    try {
        f();
    } catch (const Error& e) {
        throw Error(e.code(), context + ": " + e.what(), e.details());
    }
}

// The host veth is still the one ADD saw (not a reused ifindex).
bool same_host_link(const bpf::AttachmentRecord& rec);
// unlink(dir/name); a missing pin is fine. Appends failures.
void unpin(const std::string& dir, const char* name, Problems& errors);
// Detaches and unpins the bpf_links that earlier versions pinned.
void unpin_links(const std::string& dir, Problems& errors);
void unpin_stubs(const std::string& dir, Problems& errors);
// Pins fd at dir/name, replacing what is pinned there in one rename.
void repin(int fd, const std::string& dir, const char* name);
// Swaps whatever podfence program runs at the hook for `stub`: through the
// link earlier versions pinned at dir/link if there is one, else in place
// (BPF_F_REPLACE, XDP_FLAGS_REPLACE), else attaches it.
void swap_stub(int stub, int ifindex, bpf::Hook hook, const std::string& dir, const char* link,
               bpf::XdpMode xdp_mode = bpf::XdpMode::Native);
void unpin_all(const std::string& dir,
               Problems& errors); // links, then stubs: only unpins, detaches nothing else
// Pinned stub's program id; 0 (and a problem) if the pin is missing.
std::uint32_t pinned_prog_id(const std::string& dir, const char* stub, Problems& problems);

} // namespace podfence::verbs
