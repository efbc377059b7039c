// `podfence explain <pod> --direction D --peer ADDR [--proto P] [--port N]`:
// the verdict a new flow would get, from the pod's stored policy with the
// reference semantics (and why), and from its live policy map walked as the
// engine walks it. A disagreement is printed loudly and fails the command
// (exit 103): the kernel does not enforce what the record says.
#include <iostream>

#include <nlohmann/json.hpp>

#include "../bpf/policy_store.hpp"
#include "../common/error.hpp"
#include "../policy/cidr.hpp"
#include "../policy/explain.hpp"
#include "cli.hpp"
#include "records.hpp"

namespace podfence::cli {
namespace {

using json = nlohmann::ordered_json;
using policy::Direction;

// The live side: nullopt verdict with `error` set when it cannot be read.
struct Live {
    std::optional<policy::LiveVerdict> verdict;
    bool active = true;
    std::string error;
};

Live read_live(const bpf::AttachmentRecord& r, const policy::FlowQuery& q) {
    Live live;
    try {
        DatapathCache cache;
        bpf::PolicyStore store(cache.get(r.datapath_dir));
        auto pod = store.pod(r.slot);
        // The engine drops every packet of a slot it does not see active.
        live.active = pod && (pod->flags & PF_POD_ACTIVE) != 0;
        if (!live.active) {
            live.verdict = policy::LiveVerdict{};
            return live;
        }
        live.verdict = policy::live_decide(store.read(r.slot), q);
    } catch (const std::exception& e) {
        live.error = e.what();
    }
    return live;
}

std::string live_rule(Direction d, std::uint32_t rule) {
    return rule == PF_RULE_DEFAULT ? "default (not isolated)" : policy::rule_label(d, rule);
}

bool agree(const policy::Explanation& x, const policy::LiveVerdict& v) {
    if (x.allowed != v.allowed) return false;
    if (!x.allowed) return true;
    return x.rule ? v.rule == *x.rule : v.rule == PF_RULE_DEFAULT;
}

std::string failed_parts(const policy::RuleCheck& c) {
    if (!c.peer_ok && !c.port_ok) return "peer and port";
    return c.peer_ok ? "port" : "peer";
}

json check_json(Direction d, const policy::RuleCheck& c) {
    json failed = json::array();
    if (!c.peer_ok) failed.push_back("peer");
    if (!c.port_ok) failed.push_back("port");
    return {{"rule", policy::rule_label(d, c.index)},
            {"ruleIndex", c.index},
            {"failed", failed},
            {"peer", c.peer},
            {"port", c.port}};
}

// How many failed rules the text form names (JSON lists them all).
constexpr std::size_t kClosestShown = 5;

void print_text(const bpf::AttachmentRecord& r, const policy::FlowQuery& q, const policy::Explanation& x,
                const Live& live, bool agrees) {
    const Direction d = q.dir;
    std::cout << "pod " << (pod_name(r).empty() ? "(no Kubernetes identity)" : pod_name(r)) << ", container "
              << r.container_id.substr(0, 12) << " " << r.ifname << ", slot " << r.slot << ", "
              << r.enforcement << "\n";
    std::cout << "flow: new " << policy::direction_name(d) << " " << policy::describe(q) << "\n";
    if (x.allowed && !x.rule) {
        std::cout << "verdict: ALLOWED: " << policy::direction_name(d)
                  << " is not isolated (the policy's policyTypes do not name it)\n";
    } else if (x.allowed) {
        std::cout << "verdict: ALLOWED by " << policy::rule_label(d, *x.rule) << ": peer " << x.match.peer
                  << ", port " << x.match.port << "\n";
    } else {
        std::cout << "verdict: DENIED: " << policy::direction_name(d)
                  << " is isolated and no rule admits it (" << x.failed.size()
                  << (x.failed.size() == 1 ? " rule" : " rules") << ")\n";
        for (std::size_t i = 0; i < x.failed.size() && i < kClosestShown; ++i) {
            const auto& c = x.failed[i];
            std::cout << "  " << policy::rule_label(d, c.index) << " failed on " << failed_parts(c) << ":";
            std::cout << (c.peer_ok ? " peer " + c.peer + " matched;" : " peer: " + c.peer + ";");
            std::cout << (c.port_ok ? " port " + c.port + " matched" : " port: " + c.port) << "\n";
        }
        if (x.failed.size() > kClosestShown)
            std::cout << "  ... " << x.failed.size() - kClosestShown << " more (--json lists them all)\n";
        if (r.enforcement == "audit")
            std::cout << "  (the pod audits: such a flow passes, counted as would-deny and reported once)\n";
    }
    if (!live.verdict) {
        std::cout << "live maps: unreadable: " << live.error << "\n";
        return;
    }
    std::cout << "live maps: ";
    if (!live.active)
        std::cout << "DENIED (slot " << r.slot << " is not active: the engine drops everything)";
    else if (live.verdict->allowed)
        std::cout << "ALLOWED by " << live_rule(d, live.verdict->rule);
    else
        std::cout << "DENIED";
    std::cout << (agrees ? " (agrees)" : " -- DISAGREES WITH THE STORED POLICY") << "\n";
}

json to_json(const bpf::AttachmentRecord& r, const policy::FlowQuery& q, const policy::Explanation& x,
             const Live& live, bool agrees) {
    const Direction d = q.dir;
    json flow = {{"direction", policy::direction_name(d)},
                 {"peer", policy::format_addr(q.family, q.peer)},
                 {"family", q.family == PF_FAMILY_V6 ? "ipv6" : "ipv4"},
                 {"protocol", policy::protocol_name(q.proto)},
                 {"port", q.port}};
    json j = {{"pod", {{"namespace", r.pod_namespace}, {"name", r.pod_name}, {"uid", r.pod_uid}}},
              {"containerID", r.container_id},
              {"ifname", r.ifname},
              {"slot", r.slot},
              {"enforcement", r.enforcement},
              {"flow", flow},
              {"verdict", x.allowed ? "allowed" : "denied"},
              {"isolated", x.isolated},
              {"rule", x.rule ? json(policy::rule_label(d, *x.rule)) : json(nullptr)}};
    if (x.rule) {
        j["ruleIndex"] = *x.rule;
        j["matched"] = {{"peer", x.match.peer}, {"port", x.match.port}};
    }
    json failed = json::array();
    for (const auto& c : x.failed)
        failed.push_back(check_json(d, c));
    j["failed"] = failed;
    if (live.verdict) {
        j["live"] = {
            {"verdict", live.verdict->allowed ? "allowed" : "denied"},
            {"active", live.active},
            {"rule", live.verdict->allowed ? json(live_rule(d, live.verdict->rule)) : json(nullptr)}};
        j["agree"] = agrees;
    } else {
        j["live"] = {{"error", live.error}};
        j["agree"] = nullptr;
    }
    return j;
}

} // namespace

void cmd_explain(const Args& a) {
    if (a.positional.empty())
        throw Error(Code::InvalidConfig,
                    "explain needs a pod: namespace/name or a container ID prefix (see podfence help)");
    // Parse everything before touching bpffs: a typo is a usage error.
    const policy::FlowQuery q = policy::parse_flow_query(
        {a.option("--direction"), a.option("--peer"), a.option("--proto"), a.option("--port")});
    const bpf::AttachmentRecord r = find_one(a, a.positional[0], a.option("--ifname"));
    policy::Policy pol;
    try {
        pol = policy::parse_policy(r.policy_json);
    } catch (const std::exception& e) {
        throw Error(Code::InvalidPolicy,
                    "the stored policy of " + r.container_id + " is unreadable: " + e.what());
    }
    const policy::Explanation x = policy::explain(pol, q);
    const Live live = read_live(r, q);
    const bool agrees = live.verdict && agree(x, *live.verdict);
    if (a.json)
        std::cout << to_json(r, q, x, live, agrees).dump() << "\n";
    else
        print_text(r, q, x, live, agrees);
    if (live.verdict && !agrees)
        throw Error(Code::CheckMismatch, "the live policy map of " + r.container_id + " " + r.ifname +
                                             " and its stored policy DISAGREE on this flow (podfence update "
                                             "with the stored policy rewrites the map)");
}

} // namespace podfence::cli
