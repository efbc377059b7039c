#include "events.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "counters.hpp"

#include "common/error.hpp"

namespace podfence::bpf {
namespace {

int on_event(void* ctx, void* data, size_t size) {
    if (size < sizeof(pf_event)) return 0;
    pf_event ev;
    std::memcpy(&ev, data, sizeof ev);
    (*static_cast<EventStream::Handler*>(ctx))(ev);
    return 0;
}

} // namespace

void set_events_flag(const Datapath& dp, bool on) {
    std::uint32_t key = 0;
    pf_config cfg{};
    // A one-entry array: the lookup fails only on a real error, and writing
    // zeros back would clear the other flags.
    if (bpf_map_lookup_elem(dp.config_map(), &key, &cfg) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_lookup_elem", "pf_config", errno);
    cfg.flags = on ? (cfg.flags | PF_CFG_EVENTS) : (cfg.flags & ~PF_CFG_EVENTS);
    if (bpf_map_update_elem(dp.config_map(), &key, &cfg, BPF_ANY) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_update_elem", "pf_config", errno);
}

std::uint64_t events_lost(const Datapath& dp, std::uint32_t slot) {
    std::uint64_t lost = 0;
    for (const pf_counter& c : read_totals(dp, slot))
        lost += c.events_lost;
    return lost;
}

void EventStream::RingDeleter::operator()(ring_buffer* rb) const {
    ring_buffer__free(rb);
}

EventStream::EventStream() = default;
EventStream::~EventStream() = default;

void EventStream::add(const Datapath& dp, Handler handler) {
    handlers_.push_back(std::make_unique<Handler>(std::move(handler)));
    void* ctx = handlers_.back().get();
    if (!rb_) {
        rb_.reset(ring_buffer__new(dp.events_map(), on_event, ctx, nullptr));
        if (!rb_) throw errno_error(Code::MapSeed, "ring_buffer__new", "pf_events of " + dp.dir(), errno);
    } else if (ring_buffer__add(rb_.get(), dp.events_map(), on_event, ctx) != 0) {
        throw errno_error(Code::MapSeed, "ring_buffer__add", "pf_events of " + dp.dir(), errno);
    }
}

void EventStream::poll(int timeout_ms) {
    int n = ring_buffer__poll(rb_.get(), timeout_ms);
    if (n < 0 && n != -EINTR) throw errno_error(Code::MapSeed, "ring_buffer__poll", "pf_events", n);
}

} // namespace podfence::bpf
