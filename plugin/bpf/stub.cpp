// The per-attachment program: the fast path of bpf/fastpath.bpf.c on this
// binary's own datapath, else the stub assembled from raw instructions.
#include "stub.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <fcntl.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/podfence_abi.h"
#include "common/error.hpp"
#include "insn.hpp"
#include "libbpf_log.hpp"
#include "pf_fastpath.skel.h"
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

struct FastpathDeleter {
    void operator()(pf_fastpath* s) const { pf_fastpath::destroy(s); }
};

// The fast path shares the maps and the pf_frame layout of the engine it
// hands over to, so it runs only on the datapath built from this binary.
bool is_own_datapath(const Datapath& dp) {
    const std::string& dir = dp.dir();
    return dir.substr(dir.rfind('/') + 1) == embedded_datapath_name();
}

} // namespace

UniqueFd load_attachment_program(const std::function<int(Map)>& map_fd, bool xdp, std::uint32_t slot,
                                 std::uint32_t dir) {
    const char* what = xdp ? "pf_stub_xdp" : "pf_stub_tc";
    const auto fail = [&](const char* call, int e, const std::string& log) -> Error {
        return Error(
            Code::BpfLoad,
            failed(call, std::string(what) + " slot " + std::to_string(slot) + " dir " + std::to_string(dir),
                   e) +
                (log.empty() ? "" : "; libbpf/verifier output (tail):\n" + log));
    };
    detail::LibbpfCapture capture;
    std::unique_ptr<pf_fastpath, FastpathDeleter> skel(pf_fastpath::open());
    if (!skel) throw fail("pf_fastpath__open", errno, capture.tail(1500));
    bpf_program__set_autoload(xdp ? skel->progs.pf_stub_tc : skel->progs.pf_stub_xdp, false);
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, skel->obj) {
        if (bpf_map__is_internal(map)) {
            // .rodata: this program's constants, read by the verifier, never
            // by userspace: not mmapable, which would round it up to pages.
            if (bpf_map__set_map_flags(map, bpf_map__map_flags(map) & ~BPF_F_MMAPABLE) != 0)
                throw fail("bpf_map__set_map_flags", errno, capture.tail(1500));
            continue;
        }
        int fd = -1;
        for (std::size_t i = 0; i < kMaps.size(); ++i)
            if (std::string_view(bpf_map__name(map)) == kMaps[i].name) fd = map_fd(static_cast<Map>(i));
        // Without an fd: a map the fast path does not read (a program that
        // did would fail to load), so nothing to create.
        if (fd < 0 ? bpf_map__set_autocreate(map, false) != 0 : bpf_map__reuse_fd(map, fd) != 0)
            throw fail("bpf_map__reuse_fd", errno, capture.tail(1500));
    }
    skel->rodata->pf_fast_slot = slot;
    skel->rodata->pf_fast_dir = dir;
    if (pf_fastpath::load(skel.get()) != 0) throw fail("pf_fastpath__load", errno, capture.tail(1500));
    bpf_program* prog = xdp ? skel->progs.pf_stub_xdp : skel->progs.pf_stub_tc;
    // The object goes, the program stays: the caller's fd holds it.
    int fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 3);
    if (fd < 0) throw fail("fcntl(F_DUPFD_CLOEXEC)", errno, "");
    return UniqueFd(fd);
}

UniqueFd load_raw_stub(int scratch_fd, int engine_fd, bool xdp, std::uint32_t slot, std::uint32_t dir) {
    return xdp ? load_stub(BPF_PROG_TYPE_XDP, BPF_XDP, "pf_stub_xdp", scratch_fd, engine_fd, slot, dir,
                           XDP_DROP)
               : load_stub(BPF_PROG_TYPE_SCHED_CLS, static_cast<bpf_attach_type>(0), "pf_stub_tc", scratch_fd,
                           engine_fd, slot, dir, TC_ACT_SHOT);
}

UniqueFd load_tc_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir) {
    if (is_own_datapath(dp))
        return load_attachment_program([&](Map m) { return dp.map(m); }, false, slot, dir);
    return load_raw_stub(dp.scratch_map(), dp.tc_engine_map(), false, slot, dir);
}

UniqueFd load_xdp_stub(const Datapath& dp, std::uint32_t slot, std::uint32_t dir) {
    if (is_own_datapath(dp))
        return load_attachment_program([&](Map m) { return dp.map(m); }, true, slot, dir);
    return load_raw_stub(dp.scratch_map(), dp.xdp_engine_map(), true, slot, dir);
}

} // namespace podfence::bpf
