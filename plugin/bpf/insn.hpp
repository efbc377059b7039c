// Internal: a tiny BPF assembler, enough for the per-attachment stub
// (stub.cpp) and the tcx probe (links.cpp).
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <vector>

namespace podfence::bpf::detail {

inline bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
                     std::int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}
inline bpf_insn mov_reg(std::uint8_t dst, std::uint8_t src) {
    return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}
inline bpf_insn mov_imm(std::uint8_t dst, std::int32_t imm) {
    return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
inline bpf_insn add_imm(std::uint8_t dst, std::int32_t imm) {
    return insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm);
}
inline bpf_insn store_u32(std::uint8_t dst, std::int16_t off, std::uint32_t v) {
    return insn(BPF_ST | BPF_MEM | BPF_W, dst, 0, off, static_cast<std::int32_t>(v));
}
inline bpf_insn call(std::int32_t helper) {
    return insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
}
inline bpf_insn jeq_imm(std::uint8_t dst, std::int32_t imm, std::int16_t off) {
    return insn(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm);
}
inline bpf_insn exit_insn() {
    return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}
// 64-bit immediate load of a map by fd: two instruction slots.
inline void ld_map(std::vector<bpf_insn>& p, std::uint8_t dst, int map_fd) {
    p.push_back(insn(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, map_fd));
    p.push_back(insn(0, 0, 0, 0, 0));
}

} // namespace podfence::bpf::detail
