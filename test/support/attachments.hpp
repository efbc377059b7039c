// The per-attachment programs a pod's hooks run (plugin/bpf/stub.hpp), loaded
// on first use, one per (hook type, slot, direction), on the maps `map_fd`
// gives: for the datapath tests and the test_run bench, which load the engine
// unpinned.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <utility>

#include "bpf/stub.hpp"
#include "common/fd.hpp"

namespace pftest {

class Attachments {
public:
    explicit Attachments(std::function<int(podfence::bpf::Map)> map_fd) : map_fd_(std::move(map_fd)) {}

    // Throws podfence::Error when the program does not load.
    int get(bool xdp, std::uint32_t slot, std::uint32_t dir) {
        const auto key = std::make_tuple(xdp, slot, dir);
        auto it = progs_.find(key);
        if (it == progs_.end()) it = progs_.emplace(key, load(xdp, slot, dir)).first;
        return it->second.get();
    }

    // The raw stub from now on (what an older datapath's pods run).
    void use_raw_stubs(bool raw) { raw_ = raw; }

private:
    podfence::UniqueFd load(bool xdp, std::uint32_t slot, std::uint32_t dir) const {
        using podfence::bpf::Map;
        if (!raw_) return podfence::bpf::load_attachment_program(map_fd_, xdp, slot, dir);
        return podfence::bpf::load_raw_stub(map_fd_(Map::Scratch),
                                            map_fd_(xdp ? Map::XdpEngine : Map::TcEngine), xdp, slot, dir);
    }

    std::function<int(podfence::bpf::Map)> map_fd_;
    bool raw_ = false;
    std::map<std::tuple<bool, std::uint32_t, std::uint32_t>, podfence::UniqueFd> progs_;
};

} // namespace pftest
