// bpf_link attachments (tcx, XDP) and what the kernel reports about them.
// libbpf 1.1 and the 6.1 uapi predate tcx, so the few tcx definitions needed
// are local.
#include "links.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/error.hpp"
#include "common/log.hpp"
#include "insn.hpp"
#include "util.hpp"

namespace podfence::bpf {

namespace {

// ---- tcx definitions the 6.1 uapi lacks (values from the 6.6+ uapi) ----
constexpr std::uint32_t kTcxIngress = 46; // BPF_TCX_INGRESS
constexpr std::uint32_t kTcxEgress = 47;  // BPF_TCX_EGRESS

// union bpf_attr's query member as of 6.6 (adds link ids and revision).
struct QueryAttr {
    std::uint32_t target_ifindex;
    std::uint32_t attach_type;
    std::uint32_t query_flags;
    std::uint32_t attach_flags;
    std::uint64_t prog_ids;
    std::uint32_t count;
    std::uint32_t pad;
    std::uint64_t prog_attach_flags;
    std::uint64_t link_ids;
    std::uint64_t link_attach_flags;
    std::uint64_t revision;
};

std::uint32_t tcx_type(Hook hook) {
    switch (hook) {
    case Hook::TcxIngress: return kTcxIngress;
    case Hook::TcxEgress: return kTcxEgress;
    case Hook::Xdp: break;
    }
    throw Error(Code::Attach, "internal: Hook::Xdp is not a tcx hook");
}

const char* hook_name(Hook hook) {
    switch (hook) {
    case Hook::TcxIngress: return "tcx ingress";
    case Hook::TcxEgress: return "tcx egress";
    case Hook::Xdp: return "xdp";
    }
    return "?";
}

std::string on_dev(int ifindex) {
    return "ifindex " + std::to_string(ifindex);
}

std::uint32_t info_len_check(int fd, void* info, std::uint32_t len, const char* what) {
    std::uint32_t l = len;
    if (bpf_obj_get_info_by_fd(fd, info, &l) != 0)
        throw errno_error(Code::Attach, "bpf_obj_get_info_by_fd",
                          std::string(what) + " fd " + std::to_string(fd), errno);
    return l;
}

} // namespace

bool kernel_has_tcx() {
    // A minimal tc program linked at ifindex 0: a kernel with tcx gets past
    // the attach-type check and fails the device lookup (ENODEV); one
    // without rejects the attach type (EINVAL).
    const bpf_insn prog[] = {detail::mov_imm(BPF_REG_0, TC_ACT_OK), detail::exit_insn()};
    UniqueFd fd(bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "pf_probe_tcx", "GPL", prog, 2, nullptr));
    if (!fd) {
        log::warn(failed("bpf_prog_load", "tcx probe", errno));
        return false;
    }
    int link = bpf_link_create(fd.get(), 0, static_cast<bpf_attach_type>(kTcxIngress), nullptr);
    int e = errno;
    if (link >= 0) { // cannot happen (ifindex 0), but do not leak it
        ::close(link);
        return true;
    }
    return e == ENODEV;
}

UniqueFd attach_tcx(int prog_fd, int ifindex, Hook hook) {
    // libbpf 1.1 passes an attach type it does not know straight to the
    // kernel when opts are NULL (and target_fd != 0 skips its fallbacks).
    int fd = bpf_link_create(prog_fd, ifindex, static_cast<bpf_attach_type>(tcx_type(hook)), nullptr);
    if (fd < 0)
        throw errno_error(Code::Attach, "bpf_link_create",
                          std::string(hook_name(hook)) + " on " + on_dev(ifindex), errno);
    return UniqueFd(fd);
}

UniqueFd attach_xdp(int prog_fd, int ifindex, XdpMode mode, XdpMode* used) {
    auto create = [&](std::uint32_t flags) {
        LIBBPF_OPTS(bpf_link_create_opts, opts);
        opts.flags = flags;
        return bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
    };
    if (mode == XdpMode::Native) {
        int fd = create(XDP_FLAGS_DRV_MODE);
        if (fd >= 0) {
            if (used) *used = XdpMode::Native;
            return UniqueFd(fd);
        }
        log::warn(failed("bpf_link_create", "xdp native on " + on_dev(ifindex), errno) +
                  "; falling back to generic XDP");
    }
    int fd = create(XDP_FLAGS_SKB_MODE);
    if (fd < 0)
        throw errno_error(Code::Attach, "bpf_link_create", "xdp generic on " + on_dev(ifindex), errno);
    if (used) *used = XdpMode::Generic;
    return UniqueFd(fd);
}

void tcx_attach(int prog_fd, int ifindex, Hook hook, int replace_fd) {
    LIBBPF_OPTS(bpf_prog_attach_opts, opts);
    if (replace_fd >= 0) {
        opts.flags = BPF_F_REPLACE;
        opts.replace_prog_fd = replace_fd;
    }
    // tcx takes the ifindex where cgroup attach types take a target fd.
    if (bpf_prog_attach_opts(prog_fd, ifindex, static_cast<bpf_attach_type>(tcx_type(hook)), &opts) != 0)
        throw errno_error(Code::Attach, replace_fd >= 0 ? "BPF_PROG_ATTACH(replace)" : "BPF_PROG_ATTACH",
                          std::string(hook_name(hook)) + " on " + on_dev(ifindex), errno);
}

bool tcx_detach(int prog_fd, int ifindex, Hook hook) {
    if (bpf_prog_detach2(prog_fd, ifindex, static_cast<bpf_attach_type>(tcx_type(hook))) == 0) return true;
    // ENOENT: not attached there; ENODEV: the device is gone, and with it the hook.
    if (errno == ENOENT || errno == ENODEV) return false;
    throw errno_error(Code::Attach, "BPF_PROG_DETACH",
                      std::string(hook_name(hook)) + " on " + on_dev(ifindex), errno);
}

namespace {

// Which XDP mode holds prog_id on ifindex: XDP_FLAGS_DRV_MODE,
// XDP_FLAGS_SKB_MODE, or 0 when neither does.
std::uint32_t xdp_mode_of(int ifindex, std::uint32_t prog_id) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) != 0) {
        if (errno == ENODEV) return 0;
        throw errno_error(Code::Attach, "bpf_xdp_query", on_dev(ifindex), errno);
    }
    if (q.drv_prog_id == prog_id) return XDP_FLAGS_DRV_MODE;
    if (q.skb_prog_id == prog_id) return XDP_FLAGS_SKB_MODE;
    return 0;
}

} // namespace

void xdp_attach(int prog_fd, int ifindex, XdpMode mode, XdpMode* used, int replace_fd) {
    std::uint32_t how = XDP_FLAGS_UPDATE_IF_NOEXIST;
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
    if (replace_fd >= 0) {
        // The mode is the old program's: a replace cannot change it.
        std::uint32_t old_mode = xdp_mode_of(ifindex, prog_id(replace_fd));
        if (old_mode == 0)
            throw Error(Code::Attach, "xdp on " + on_dev(ifindex) + ": the program to replace (id " +
                                          std::to_string(prog_id(replace_fd)) + ") is not attached there");
        opts.old_prog_fd = replace_fd;
        if (bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_REPLACE | old_mode, &opts) != 0)
            throw errno_error(Code::Attach, "bpf_xdp_attach(replace)", "xdp on " + on_dev(ifindex), errno);
        if (used) *used = old_mode == XDP_FLAGS_DRV_MODE ? XdpMode::Native : XdpMode::Generic;
        return;
    }
    if (mode == XdpMode::Native) {
        if (bpf_xdp_attach(ifindex, prog_fd, how | XDP_FLAGS_DRV_MODE, &opts) == 0) {
            if (used) *used = XdpMode::Native;
            return;
        }
        log::warn(failed("bpf_xdp_attach", "xdp native on " + on_dev(ifindex), errno) +
                  "; falling back to generic XDP");
    }
    if (bpf_xdp_attach(ifindex, prog_fd, how | XDP_FLAGS_SKB_MODE, &opts) != 0)
        throw errno_error(Code::Attach, "bpf_xdp_attach", "xdp generic on " + on_dev(ifindex), errno);
    if (used) *used = XdpMode::Generic;
}

bool xdp_detach(int prog_fd, int ifindex) {
    std::uint32_t mode = xdp_mode_of(ifindex, prog_id(prog_fd));
    if (mode == 0) return false;
    // REPLACE with the expected program: never removes someone else's.
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
    opts.old_prog_fd = prog_fd;
    if (bpf_xdp_attach(ifindex, -1, XDP_FLAGS_REPLACE | mode, &opts) == 0) return true;
    if (errno == ENODEV) return false;
    throw errno_error(Code::Attach, "bpf_xdp_detach", "xdp on " + on_dev(ifindex), errno);
}

std::uint32_t xdp_prog_id(int ifindex) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) != 0) {
        if (errno == ENODEV) return 0;
        throw errno_error(Code::Attach, "bpf_xdp_query", on_dev(ifindex), errno);
    }
    return q.prog_id;
}

void update_link(int link_fd, int prog_fd, int old_fd) {
    LIBBPF_OPTS(bpf_link_update_opts, opts);
    opts.flags = BPF_F_REPLACE;
    opts.old_prog_fd = static_cast<std::uint32_t>(old_fd);
    if (bpf_link_update(link_fd, prog_fd, &opts) != 0)
        throw errno_error(Code::Attach, "BPF_LINK_UPDATE", "link fd " + std::to_string(link_fd), errno);
}

LinkState link_state(int link_fd) {
    bpf_link_info info{};
    info_len_check(link_fd, &info, sizeof info, "link");
    LinkState s;
    s.link_id = info.id;
    s.prog_id = info.prog_id;
    s.type = info.type;
    // XDP links: union = {ifindex}; tcx links (type 11): {ifindex, attach_type}.
    std::uint32_t u[2];
    std::memcpy(u, &info.xdp, sizeof u);
    if (info.type == BPF_LINK_TYPE_XDP) {
        s.ifindex = u[0];
    } else if (info.type == 11 /* BPF_LINK_TYPE_TCX */) {
        s.ifindex = u[0];
        s.attach_type = u[1];
    }
    return s;
}

std::vector<std::uint32_t> tcx_prog_ids(int ifindex, Hook hook) {
    std::vector<std::uint32_t> ids(16);
    for (;;) {
        QueryAttr attr{};
        attr.target_ifindex = static_cast<std::uint32_t>(ifindex);
        attr.attach_type = tcx_type(hook);
        attr.prog_ids = reinterpret_cast<std::uintptr_t>(ids.data());
        attr.count = static_cast<std::uint32_t>(ids.size());
        if (::syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof attr) == 0) {
            ids.resize(attr.count);
            return ids;
        }
        if (errno == ENOSPC && attr.count > ids.size()) {
            ids.resize(attr.count);
            continue;
        }
        if (errno == ENODEV) return {}; // the device, and its hooks, are gone
        throw errno_error(Code::Attach, "BPF_PROG_QUERY",
                          std::string(hook_name(hook)) + " on " + on_dev(ifindex), errno);
    }
}

UniqueFd prog_by_id(std::uint32_t id) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) {
        if (errno == ENOENT) return UniqueFd();
        throw errno_error(Code::Attach, "bpf_prog_get_fd_by_id", "program id " + std::to_string(id), errno);
    }
    return UniqueFd(fd);
}

bool is_stub(int prog_fd) {
    bpf_prog_info info{};
    info_len_check(prog_fd, &info, sizeof info, "prog");
    return std::strncmp(info.name, "pf_stub", 7) == 0;
}

UniqueFd stub_at(int ifindex, Hook hook) {
    std::vector<std::uint32_t> ids;
    if (hook == Hook::Xdp) {
        if (std::uint32_t id = xdp_prog_id(ifindex)) ids.push_back(id);
    } else {
        ids = tcx_prog_ids(ifindex, hook);
    }
    for (std::uint32_t id : ids)
        if (UniqueFd fd = prog_by_id(id); fd && is_stub(fd.get())) return fd;
    return UniqueFd();
}

std::uint32_t prog_id(int prog_fd) {
    bpf_prog_info info{};
    info_len_check(prog_fd, &info, sizeof info, "prog");
    return info.id;
}

} // namespace podfence::bpf
