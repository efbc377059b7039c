#include "datapath/skel_loader.hpp"

#include <utility>

#include "bpf/object.hpp"

namespace pftest {

using podfence::bpf::Map;

struct SkelObject {
    podfence::bpf::EmbeddedObject obj;
};

// Defined here, where SkelObject is complete.
void SkelObjectDeleter::operator()(SkelObject* s) const {
    std::default_delete<SkelObject>{}(s);
}

// SkelFds' field of each map the harness uses.
constexpr std::pair<Map, int SkelFds::*> kFields[] = {
    {Map::Policy, &SkelFds::policy},         {Map::Pods, &SkelFds::pods},
    {Map::Scratch, &SkelFds::scratch},       {Map::TcEngine, &SkelFds::tc_engine},
    {Map::XdpEngine, &SkelFds::xdp_engine},  {Map::Conntrack, &SkelFds::conntrack},
    {Map::Frags, &SkelFds::frags},           {Map::Counters, &SkelFds::counters},
    {Map::RuleHits, &SkelFds::rule_hits},    {Map::Config, &SkelFds::config},
    {Map::Events, &SkelFds::events},         {Map::Sources, &SkelFds::sources},
    {Map::Conntrack4, &SkelFds::conntrack4}, {Map::FlowCache, &SkelFds::flowcache},
};

SkelPtr load_skeleton(SkelFds& fds) {
    auto obj = podfence::bpf::EmbeddedObject::load();
    if (!obj) return nullptr;
    SkelPtr owner(std::make_unique<SkelObject>(SkelObject{std::move(obj)}).release());
    fds.tc = owner->obj.tc_prog();
    fds.xdp = owner->obj.xdp_prog();
    for (const auto& [map, field] : kFields)
        fds.*field = owner->obj.map_fd(map);
    return owner;
}

int map_fd(const SkelFds& fds, Map m) {
    for (const auto& [map, field] : kFields)
        if (map == m) return fds.*field;
    return -1;
}

} // namespace pftest
