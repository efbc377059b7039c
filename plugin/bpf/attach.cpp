// Stubs (raw instructions), bpf_link attachments (tcx, XDP) and what the
// kernel reports about them. libbpf 1.1 and the 6.1 uapi predate tcx, so the
// few tcx definitions needed are local.
#include "attach.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstddef>

#include "bpf/podfence_abi.h"
#include <vector>

#include "common/error.hpp"
#include "common/log.hpp"
#include "util.hpp"

namespace podfence::bpf {

using detail::failed;

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

// ---- a tiny assembler for the stub ----
bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off, std::int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}
bpf_insn mov_reg(std::uint8_t dst, std::uint8_t src) {
    return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}
bpf_insn mov_imm(std::uint8_t dst, std::int32_t imm) {
    return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
bpf_insn add_imm(std::uint8_t dst, std::int32_t imm) {
    return insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm);
}
bpf_insn store_u32(std::uint8_t dst, std::int16_t off, std::uint32_t v) {
    return insn(BPF_ST | BPF_MEM | BPF_W, dst, 0, off, static_cast<std::int32_t>(v));
}
bpf_insn call(std::int32_t helper) {
    return insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
}
bpf_insn jeq_imm(std::uint8_t dst, std::int32_t imm, std::int16_t off) {
    return insn(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm);
}
bpf_insn exit_insn() {
    return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}
// 64-bit immediate load of a map by fd: two instruction slots.
void ld_map(std::vector<bpf_insn>& p, std::uint8_t dst, int map_fd) {
    p.push_back(insn(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, map_fd));
    p.push_back(insn(0, 0, 0, 0, 0));
}

// pf_scratch[0] = {slot, dir}; tail_call(ctx, engine, 0); return drop.
std::vector<bpf_insn> stub_program(int scratch_fd, int engine_fd, std::uint32_t slot, std::uint32_t dir,
                                   std::int32_t drop_verdict) {
    static_assert(offsetof(pf_scratch, slot) == 0 && offsetof(pf_scratch, dir) == 4);
    std::vector<bpf_insn> p;
    p.push_back(mov_reg(BPF_REG_6, BPF_REG_1)); // keep ctx across the helper call
    p.push_back(store_u32(BPF_REG_10, -4, 0));  // key = 0 on the stack
    p.push_back(mov_reg(BPF_REG_2, BPF_REG_10));
    p.push_back(add_imm(BPF_REG_2, -4));
    ld_map(p, BPF_REG_1, scratch_fd);
    p.push_back(call(BPF_FUNC_map_lookup_elem));
    const std::size_t jump_at = p.size();
    p.push_back(jeq_imm(BPF_REG_0, 0, 0)); // patched below: NULL => drop
    p.push_back(store_u32(BPF_REG_0, 0, slot));
    p.push_back(store_u32(BPF_REG_0, 4, dir));
    p.push_back(mov_reg(BPF_REG_1, BPF_REG_6));
    ld_map(p, BPF_REG_2, engine_fd);
    p.push_back(mov_imm(BPF_REG_3, 0));
    p.push_back(call(BPF_FUNC_tail_call));
    const std::size_t drop_at = p.size(); // reached only if the tail call failed
    p.push_back(mov_imm(BPF_REG_0, drop_verdict));
    p.push_back(exit_insn());
    p[jump_at].off = static_cast<std::int16_t>(drop_at - jump_at - 1);
    return p;
}

UniqueFd load_stub(bpf_prog_type type, bpf_attach_type expected, const char* name, int scratch_fd,
                   int engine_fd, std::uint32_t slot, std::uint32_t dir, std::int32_t drop_verdict) {
    auto insns = stub_program(scratch_fd, engine_fd, slot, dir, drop_verdict);
    std::vector<char> vbuf(64 * 1024);
    LIBBPF_OPTS(bpf_prog_load_opts, opts);
    // Tail calls require caller and callee to agree on the attach type:
    // libbpf loads SEC("tc") with 0 and SEC("xdp") with BPF_XDP.
    opts.expected_attach_type = expected;
    opts.log_buf = vbuf.data();
    opts.log_size = static_cast<std::uint32_t>(vbuf.size());
    // libbpf retries a failed load with log_level 1 when log_buf is set, so
    // the buffer holds the verifier's reason only on failure.
    int fd = bpf_prog_load(type, name, "GPL", insns.data(), insns.size(), &opts);
    if (fd < 0) {
        int e = errno;
        vbuf.back() = 0;
        std::string vlog(vbuf.data());
        if (vlog.size() > 1500) vlog = "..." + vlog.substr(vlog.size() - 1500);
        throw Error(
            Code::BpfLoad,
            failed("bpf_prog_load",
                   std::string(name) + " slot " + std::to_string(slot) + " dir " + std::to_string(dir), e) +
                "; verifier: " + vlog);
    }
    return UniqueFd(fd);
}

std::uint32_t info_len_check(int fd, void* info, std::uint32_t len, const char* what) {
    std::uint32_t l = len;
    if (bpf_obj_get_info_by_fd(fd, info, &l) != 0)
        throw Error(Code::Attach,
                    failed("bpf_obj_get_info_by_fd", std::string(what) + " fd " + std::to_string(fd), errno));
    return l;
}

} // namespace

UniqueFd load_tc_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir) {
    return load_stub(BPF_PROG_TYPE_SCHED_CLS, static_cast<bpf_attach_type>(0), "pf_stub_tc", dp.scratch_map(),
                     dp.tc_engine_map(), slot, dir, TC_ACT_SHOT);
}

UniqueFd load_xdp_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir) {
    return load_stub(BPF_PROG_TYPE_XDP, BPF_XDP, "pf_stub_xdp", dp.scratch_map(), dp.xdp_engine_map(), slot,
                     dir, XDP_DROP);
}

bool kernel_has_tcx() {
    // A minimal tc program linked at ifindex 0: a kernel with tcx gets past
    // the attach-type check and fails the device lookup (ENODEV); one
    // without rejects the attach type (EINVAL).
    const bpf_insn prog[] = {mov_imm(BPF_REG_0, TC_ACT_OK), exit_insn()};
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
        throw Error(Code::Attach, failed("bpf_link_create",
                                         std::string(hook_name(hook)) + " on " + on_dev(ifindex), errno));
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
        throw Error(Code::Attach, failed("bpf_link_create", "xdp generic on " + on_dev(ifindex), errno));
    if (used) *used = XdpMode::Generic;
    return UniqueFd(fd);
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
        throw Error(Code::Attach,
                    failed("BPF_PROG_QUERY", std::string(hook_name(hook)) + " on " + on_dev(ifindex), errno));
    }
}

std::uint32_t prog_id(int prog_fd) {
    bpf_prog_info info{};
    info_len_check(prog_fd, &info, sizeof info, "prog");
    return info.id;
}

void pin(int fd, const std::string& path) {
    if (bpf_obj_pin(fd, path.c_str()) != 0) throw Error(Code::Io, failed("bpf_obj_pin", path, errno));
}

UniqueFd obj_get(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
        if (errno == ENOENT) return UniqueFd();
        throw Error(Code::Io, failed("bpf_obj_get", path, errno));
    }
    return UniqueFd(fd);
}

} // namespace podfence::bpf
