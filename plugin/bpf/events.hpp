// Denied-packet events of running datapaths: the PF_CFG_EVENTS switch in
// pf_config and the pf_events ring buffers, read as one stream.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bpf/podfence_abi.h"
#include "datapath.hpp"

struct ring_buffer;

namespace podfence::bpf {

// Sets or clears PF_CFG_EVENTS in dp's pf_config. Throws Error(Code::Io).
void set_events_flag(const Datapath& dp, bool on);

// The slot's pf_counters events_lost, both directions, summed over CPUs:
// what `events` polls every second (counters.hpp read_totals).
std::uint64_t events_lost(const Datapath& dp, std::uint32_t slot);

class EventStream {
public:
    using Handler = std::function<void(const pf_event&)>;

    EventStream();
    ~EventStream();
    EventStream(const EventStream&) = delete;
    EventStream& operator=(const EventStream&) = delete;

    // Adds dp's pf_events; `handler` gets each of its events (records too
    // short for a pf_event are skipped). Throws Error(Code::Io).
    void add(const Datapath& dp, Handler handler);
    // Waits up to timeout_ms for events and hands them out. A signal ends
    // the wait early without error. Throws Error(Code::Io).
    void poll(int timeout_ms);

private:
    struct RingDeleter {
        void operator()(ring_buffer* rb) const;
    };
    std::vector<std::unique_ptr<Handler>> handlers_; // stable addresses: libbpf keeps them as ctx
    std::unique_ptr<ring_buffer, RingDeleter> rb_;
};

} // namespace podfence::bpf
