// The datapath's maps, by the names they have in bpf/maps.h (also their pin
// names): the one table the plugin's Datapath, the datapath tests and the
// bench index map fds by.
#pragma once

#include <array>
#include <cstddef>

namespace podfence::bpf {

enum class Map : std::size_t {
    Policy, // ARRAY_OF_MAPS slot -> the pod's policy hash
    Pods,
    Scratch,
    TcEngine,
    XdpEngine,
    Conntrack,
    Counters,
    RuleHits,
    Config,
    Events,
    Sources,    // since ABI 4: the source check
    Frags,      // since ABI 4: fragment state
    Conntrack4, // since ABI 6: IPv4 flows (Conntrack keeps IPv6, and IPv4 before ABI 6)
    FlowCache,  // since ABI 7: per-CPU cache of established flows (engine only)
};

struct MapInfo {
    const char* name;
    unsigned since_abi; // datapaths of an older ABI may lack the map (DEL and GC still open them)
};

// Indexed by Map.
inline constexpr std::array<MapInfo, 14> kMaps = {{
    {"pf_policy", 0},
    {"pf_pods", 0},
    {"pf_scratch", 0},
    {"pf_tc_engine", 0},
    {"pf_xdp_engine", 0},
    {"pf_conntrack", 0},
    {"pf_counters", 0},
    {"pf_rule_hits", 0},
    {"pf_config", 0},
    {"pf_events", 0},
    {"pf_sources", 4},
    {"pf_frags", 4},
    {"pf_conntrack4", 6},
    {"pf_flowcache", 7},
}};
static_assert(static_cast<std::size_t>(Map::FlowCache) + 1 == kMaps.size(), "kMaps lists every Map");

// State keyed by slot that a new datapath takes over from the one its pods
// move from (Datapath::open_or_load), when the layout is the same.
inline constexpr Map kSharedMaps[] = {Map::Conntrack, Map::Frags, Map::Conntrack4};

constexpr const MapInfo& map_info(Map m) {
    return kMaps[static_cast<std::size_t>(m)];
}

} // namespace podfence::bpf
