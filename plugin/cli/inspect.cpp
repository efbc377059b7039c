// `podfence inspect` and `podfence counters`.
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../../bpf/podfence_abi.h"
#include "../bpf/counters.hpp"
#include "../policy/policy.hpp"
#include "cli.hpp"
#include "records.hpp"

namespace podfence::cli {
namespace {

using nlohmann::json;

std::optional<std::string> filter(const Args& a) {
    if (a.positional.empty()) return std::nullopt;
    return a.positional[0];
}

// "namespace/name" or "-" outside Kubernetes.
std::string pod_or_dash(const bpf::AttachmentRecord& r) {
    const std::string p = pod_name(r);
    return p.empty() ? "-" : p;
}

json pod_json(const bpf::AttachmentRecord& r) {
    return {{"namespace", r.pod_namespace}, {"name", r.pod_name}, {"uid", r.pod_uid}};
}

std::string summary_of(const bpf::AttachmentRecord& r) {
    try {
        return policy::summary(policy::parse_policy(r.policy_json));
    } catch (const std::exception&) {
        return "(unreadable policy)";
    }
}

// "off", or the addresses the pod may send from besides 0.0.0.0, :: and fe80::/64.
std::string sources_of(const bpf::AttachmentRecord& r) {
    if (!r.source_check) return "off";
    std::string out;
    for (const auto& a : r.sources)
        out += (out.empty() ? "" : ",") + a;
    return out.empty() ? "(none)" : out;
}

// The record's own JSON form plus what inspect derives from it.
json record_json(const bpf::AttachmentRecord& r) {
    json j = bpf::to_json(r);
    j["policySummary"] = summary_of(r);
    return j;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width;
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], row[i].size());
        }
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            std::cout << row[i];
            if (i + 1 < row.size()) std::cout << std::string(width[i] - row[i].size() + 2, ' ');
        }
        std::cout << "\n";
    }
}

// ---- counters ----

const char* dir_name(std::uint32_t d) {
    return d == PF_DIR_INGRESS ? "ingress" : "egress";
}

std::string rule_name(std::uint32_t rule) {
    if (rule == PF_RULE_DEFAULT) return "default";
    // Audit: flows no rule admits, passed anyway.
    if (rule == PF_RULE_NONE) return "would-deny";
    return std::to_string(rule);
}

json counters_json(const bpf::AttachmentRecord& r, const bpf::SlotCounters& c) {
    json dirs = json::object();
    for (std::uint32_t d = 0; d < PF_NUM_DIRS; ++d) {
        json hits = json::object();
        for (const auto& [rule, n] : c[d].rule_hits)
            hits[rule_name(rule)] = n;
        dirs[dir_name(d)] = {{"allowedPackets", c[d].total.allowed_packets},
                             {"allowedBytes", c[d].total.allowed_bytes},
                             {"deniedPackets", c[d].total.denied_packets},
                             {"deniedBytes", c[d].total.denied_bytes},
                             {"spoofedPackets", c[d].total.spoofed_packets},
                             {"spoofedBytes", c[d].total.spoofed_bytes},
                             {"wouldDenyPackets", c[d].total.would_deny_packets},
                             {"wouldDenyBytes", c[d].total.would_deny_bytes},
                             {"eventsLost", c[d].total.events_lost},
                             {"ruleHits", hits}};
    }
    return {{"containerID", r.container_id}, {"ifname", r.ifname}, {"pod", pod_json(r)},
            {"enforcement", r.enforcement},  {"slot", r.slot},     {"directions", dirs}};
}

void print_counters(const bpf::AttachmentRecord& r, const bpf::SlotCounters& c) {
    std::cout << r.container_id << " " << r.ifname << " (pod " << pod_or_dash(r)
              << (r.pod_uid.empty() ? "" : " uid " + r.pod_uid) << ", " << r.enforcement << ", slot "
              << r.slot << ", host veth " << r.host_ifname << ")\n";
    for (std::uint32_t d = 0; d < PF_NUM_DIRS; ++d) {
        const pf_counter& t = c[d].total;
        std::cout << "  " << std::left << std::setw(8) << dir_name(d) << std::right << " allowed "
                  << t.allowed_packets << " pkts " << t.allowed_bytes << " bytes, denied " << t.denied_packets
                  << " pkts " << t.denied_bytes << " bytes";
        // Only egress can carry a forged source (the pod's own packets).
        if (d == PF_DIR_EGRESS)
            std::cout << ", spoofed " << t.spoofed_packets << " pkts " << t.spoofed_bytes << " bytes";
        // Shown once there is something to show, or always for an auditing pod.
        if (r.enforcement == "audit" || t.would_deny_packets != 0)
            std::cout << ", would-deny " << t.would_deny_packets << " pkts " << t.would_deny_bytes
                      << " bytes";
        if (t.events_lost != 0) std::cout << ", events lost " << t.events_lost;
        std::cout << "\n";
        if (c[d].rule_hits.empty()) continue;
        std::cout << "           rule hits (new flows):";
        for (const auto& [rule, n] : c[d].rule_hits)
            std::cout << " " << rule_name(rule) << "=" << n;
        std::cout << "\n";
    }
}

} // namespace

void cmd_inspect(const Args& a) {
    auto records = load_records(a, filter(a));
    if (a.json) {
        json out = json::array();
        for (const auto& r : records)
            out.push_back(record_json(r));
        std::cout << out.dump(2) << "\n";
        return;
    }
    std::vector<std::vector<std::string>> rows = {{"POD", "CONTAINER", "IFNAME", "NETWORK", "MODE",
                                                   "HOST VETH", "SLOT", "REV", "ENFORCEMENT", "SOURCE CHECK",
                                                   "POLICY"}};
    for (const auto& r : records)
        rows.push_back({pod_or_dash(r), r.container_id.substr(0, 12), r.ifname,
                        r.network.empty() ? "-" : r.network, std::string(bpf::to_string(r.mode)),
                        r.host_ifname, std::to_string(r.slot), std::to_string(r.rev), r.enforcement,
                        sources_of(r), summary_of(r)});
    print_table(rows);
}

void cmd_counters(const Args& a) {
    auto records = load_records(a, filter(a));
    DatapathCache cache;
    json out = json::array();
    for (const auto& r : records) {
        auto c = bpf::read_counters(cache.get(r.datapath_dir), r.slot);
        if (a.json)
            out.push_back(counters_json(r, c));
        else
            print_counters(r, c);
    }
    if (a.json) std::cout << out.dump(2) << "\n";
}

} // namespace podfence::cli
