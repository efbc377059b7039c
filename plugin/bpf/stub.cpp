// The stub program, assembled from raw instructions and loaded per attachment.
#include "stub.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include "bpf/podfence_abi.h"
#include "common/error.hpp"
#include "insn.hpp"
#include "util.hpp"

namespace podfence::bpf {

using namespace detail; // the assembler (insn.hpp)

namespace {

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

} // namespace

UniqueFd load_tc_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir) {
    return load_stub(BPF_PROG_TYPE_SCHED_CLS, static_cast<bpf_attach_type>(0), "pf_stub_tc", dp.scratch_map(),
                     dp.tc_engine_map(), slot, dir, TC_ACT_SHOT);
}

UniqueFd load_xdp_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir) {
    return load_stub(BPF_PROG_TYPE_XDP, BPF_XDP, "pf_stub_xdp", dp.scratch_map(), dp.xdp_engine_map(), slot,
                     dir, XDP_DROP);
}

} // namespace podfence::bpf
