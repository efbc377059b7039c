// parse_policy(), default_policy(), to_json(), summary(). Validation is strict: every
// error names the offending field as a JSON path so an operator can fix the
// annotation without guessing.
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "common/error.hpp"
#include "policy.hpp"

namespace podfence::policy {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "podfence.io/policy: ";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw Error(Code::InvalidPolicy, std::string(kPrefix) + path + ": " + what);
}

std::string field(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string index(const std::string& path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
}

const char* type_name(const json& j) {
    switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_float: return "a non-integer number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    default: return "an unsupported JSON value";
    }
}

void expect_object(const json& j, const std::string& path) {
    if (!j.is_object()) fail(path, std::string("must be an object, got ") + type_name(j));
}

void expect_array(const json& j, const std::string& path) {
    if (!j.is_array()) fail(path, std::string("must be an array, got ") + type_name(j));
}

void check_keys(const json& obj, const std::string& path, std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, value] : obj.items()) {
        bool known = false;
        for (auto a : allowed)
            known = known || key == a;
        if (!known) {
            std::string list;
            for (auto a : allowed)
                list += (list.empty() ? "" : ", ") + std::string(a);
            fail(field(path, key), "unknown field (allowed here: " + list + ")");
        }
    }
}

// JSON null is the same as an absent key (as in Kubernetes).
const json* get(const json& obj, std::string_view key) {
    auto it = obj.find(std::string(key));
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

class Parser {
public:
    Policy parse(const json& doc);

private:
    void count(const std::string& path) {
        if (++items_ > kMaxPolicyItems)
            fail(path, "policy has more than " + std::to_string(kMaxPolicyItems) +
                           " rules, peers, except blocks and ports in total");
    }
    std::vector<Rule> parse_rules(const json& list, const std::string& path, std::string_view peers_key);
    Rule parse_rule(const json& j, const std::string& path, std::string_view peers_key);
    IpBlock parse_peer(const json& j, const std::string& path);
    Cidr parse_cidr_field(const json& j, const std::string& path);
    PortSpec parse_port(const json& j, const std::string& path);
    std::uint16_t parse_port_number(const json& j, const std::string& path);

    std::size_t items_ = 0;
};

Policy Parser::parse(const json& doc) {
    if (!doc.is_object())
        throw Error(Code::InvalidPolicy, std::string(kPrefix) +
                                             "must be a JSON object (a NetworkPolicy spec), got " +
                                             type_name(doc));
    check_keys(doc, "", {"policyTypes", "ingress", "egress", "podSelector"});

    if (const json* sel = get(doc, "podSelector")) {
        // {} selects "this pod"; labels cannot be resolved by a CNI plugin.
        expect_object(*sel, "podSelector");
        if (!sel->empty())
            fail("podSelector",
                 "only {} (this pod) is supported: the annotation already applies to its own pod");
    }

    Policy p;
    const json* ingress = get(doc, "ingress");
    const json* egress = get(doc, "egress");
    if (ingress) p.ingress = parse_rules(*ingress, "ingress", "from");
    if (egress) p.egress = parse_rules(*egress, "egress", "to");

    // An explicit [] isolates nothing (unlike Kubernetes, which defaults it):
    // it is how to_json() writes default_policy(Allow) so it reads back equal.
    const json* types = get(doc, "policyTypes");
    if (types) expect_array(*types, "policyTypes");
    if (!types) {
        p.isolate_ingress = true;
        p.isolate_egress = egress != nullptr;
        return p;
    }
    for (std::size_t i = 0; i < types->size(); ++i) {
        const json& t = (*types)[i];
        const std::string path = index("policyTypes", i);
        if (!t.is_string()) fail(path, std::string("must be a string, got ") + type_name(t));
        const auto& s = t.get_ref<const std::string&>();
        if (s == "Ingress")
            p.isolate_ingress = true;
        else if (s == "Egress")
            p.isolate_egress = true;
        else
            fail(path, "\"" + s + "\" is not a policy type (Ingress or Egress)");
    }
    return p;
}

std::vector<Rule> Parser::parse_rules(const json& list, const std::string& path, std::string_view peers_key) {
    expect_array(list, path);
    std::vector<Rule> rules;
    rules.reserve(list.size());
    for (std::size_t i = 0; i < list.size(); ++i)
        rules.push_back(parse_rule(list[i], index(path, i), peers_key));
    return rules;
}

Rule Parser::parse_rule(const json& j, const std::string& path, std::string_view peers_key) {
    count(path);
    expect_object(j, path);
    check_keys(j, path, {peers_key, "ports"});
    Rule r;
    if (const json* peers = get(j, peers_key)) {
        const std::string ppath = field(path, peers_key);
        expect_array(*peers, ppath);
        // An empty list means every peer, like an absent one.
        r.any_peer = peers->empty();
        for (std::size_t i = 0; i < peers->size(); ++i)
            r.peers.push_back(parse_peer((*peers)[i], index(ppath, i)));
    }
    if (const json* ports = get(j, "ports")) {
        const std::string ppath = field(path, "ports");
        expect_array(*ports, ppath);
        r.any_port = ports->empty();
        for (std::size_t i = 0; i < ports->size(); ++i)
            r.ports.push_back(parse_port((*ports)[i], index(ppath, i)));
    }
    return r;
}

IpBlock Parser::parse_peer(const json& j, const std::string& path) {
    count(path);
    expect_object(j, path);
    for (std::string_view sel : {"podSelector", "namespaceSelector"})
        if (j.contains(std::string(sel)))
            fail(field(path, sel), "cannot be resolved on a node: only ipBlock peers are supported");
    check_keys(j, path, {"ipBlock"});
    const json* block = get(j, "ipBlock");
    if (!block) fail(path, "a peer needs an ipBlock");
    const std::string bpath = field(path, "ipBlock");
    expect_object(*block, bpath);
    check_keys(*block, bpath, {"cidr", "except"});

    IpBlock b;
    const json* cidr = get(*block, "cidr");
    if (!cidr) fail(field(bpath, "cidr"), "is required");
    b.cidr = parse_cidr_field(*cidr, field(bpath, "cidr"));

    if (const json* except = get(*block, "except")) {
        const std::string epath = field(bpath, "except");
        expect_array(*except, epath);
        for (std::size_t i = 0; i < except->size(); ++i) {
            const std::string ipath = index(epath, i);
            count(ipath);
            Cidr e = parse_cidr_field((*except)[i], ipath);
            if (e.family != b.cidr.family || e.prefix_len <= b.cidr.prefix_len || !cidr_covers(b.cidr, e))
                fail(ipath,
                     format_cidr(e) + " is not inside cidr " + format_cidr(b.cidr) +
                         " (an except must be a strictly smaller block of the same family within cidr)");
            b.except.push_back(e);
        }
    }
    return b;
}

Cidr Parser::parse_cidr_field(const json& j, const std::string& path) {
    if (!j.is_string()) fail(path, std::string("must be a string, got ") + type_name(j));
    std::string why;
    auto c = parse_cidr(j.get_ref<const std::string&>(), why);
    if (!c) fail(path, why);
    return *c;
}

std::uint16_t Parser::parse_port_number(const json& j, const std::string& path) {
    if (j.is_string())
        fail(path, "named port \"" + j.get<std::string>() + "\" is not supported: give a number 1-65535");
    if (!j.is_number_integer()) fail(path, std::string("must be an integer 1-65535, got ") + type_name(j));
    // Unsigned first: a huge value must not wrap through int64.
    const bool ok = j.is_number_unsigned() ? j.get<std::uint64_t>() >= 1 && j.get<std::uint64_t>() <= 65535
                                           : j.get<std::int64_t>() >= 1 && j.get<std::int64_t>() <= 65535;
    if (!ok) fail(path, j.dump() + " is not a port number 1-65535");
    return static_cast<std::uint16_t>(j.get<std::int64_t>());
}

PortSpec Parser::parse_port(const json& j, const std::string& path) {
    count(path);
    expect_object(j, path);
    check_keys(j, path, {"protocol", "port", "endPort"});
    PortSpec ps;
    if (const json* proto = get(j, "protocol")) {
        const std::string ppath = field(path, "protocol");
        if (!proto->is_string()) fail(ppath, std::string("must be a string, got ") + type_name(*proto));
        const auto& s = proto->get_ref<const std::string&>();
        // Case-sensitive, as Kubernetes validates it.
        if (s == "TCP")
            ps.protocol = Protocol::TCP;
        else if (s == "UDP")
            ps.protocol = Protocol::UDP;
        else if (s == "SCTP")
            ps.protocol = Protocol::SCTP;
        else
            fail(ppath, "\"" + s + "\" is not a protocol (TCP, UDP or SCTP, upper case)");
    }
    const json* port = get(j, "port");
    const json* end = get(j, "endPort");
    if (port) {
        ps.has_port = true;
        ps.port = parse_port_number(*port, field(path, "port"));
        ps.end_port = ps.port;
    }
    if (end) {
        const std::string epath = field(path, "endPort");
        if (!port) fail(epath, "requires port");
        const std::uint16_t e = parse_port_number(*end, epath);
        if (e < ps.port) fail(epath, std::to_string(e) + " is less than port " + std::to_string(ps.port));
        ps.end_port = e;
    }
    return ps;
}

const char* protocol_name(Protocol p) {
    switch (p) {
    case Protocol::TCP: return "TCP";
    case Protocol::UDP: return "UDP";
    case Protocol::SCTP: return "SCTP";
    }
    return "TCP";
}

json rules_json(const std::vector<Rule>& rules, std::string_view peers_key) {
    json list = json::array();
    for (const Rule& r : rules) {
        json jr = json::object();
        if (!r.any_peer) {
            json peers = json::array();
            for (const IpBlock& b : r.peers) {
                json block = {{"cidr", format_cidr(b.cidr)}};
                if (!b.except.empty()) {
                    json ex = json::array();
                    for (const Cidr& e : b.except)
                        ex.push_back(format_cidr(e));
                    block["except"] = std::move(ex);
                }
                peers.push_back({{"ipBlock", std::move(block)}});
            }
            jr[std::string(peers_key)] = std::move(peers);
        }
        if (!r.any_port) {
            json ports = json::array();
            for (const PortSpec& ps : r.ports) {
                json jp = {{"protocol", protocol_name(ps.protocol)}};
                if (ps.has_port) {
                    jp["port"] = ps.port;
                    if (ps.end_port != ps.port) jp["endPort"] = ps.end_port;
                }
                ports.push_back(std::move(jp));
            }
            jr["ports"] = std::move(ports);
        }
        list.push_back(std::move(jr));
    }
    return list;
}

} // namespace

Policy default_policy(DefaultAction action) {
    Policy p;
    p.isolate_ingress = p.isolate_egress = action == DefaultAction::Deny;
    return p;
}

std::string_view to_string(Enforcement e) {
    return e == Enforcement::Audit ? "audit" : "enforce";
}

std::optional<Enforcement> parse_enforcement(std::string_view text) {
    if (text == "enforce") return Enforcement::Enforce;
    if (text == "audit") return Enforcement::Audit;
    return std::nullopt;
}

Enforcement parse_enforcement_annotation(std::string_view text) {
    if (auto e = parse_enforcement(text)) return *e;
    // Fail the ADD like a bad policy: guessing would open (audit) or close
    // (enforce) the pod against the operator's intent.
    throw Error(Code::InvalidPolicy, "podfence.io/enforcement: " + json(std::string(text)).dump() +
                                         " is not one of enforce, audit");
}

Policy parse_policy(std::string_view text) {
    json doc;
    try {
        doc = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        // Not only parse_error: a number too large for a double (1e999) is
        // out_of_range, and must fail as a bad policy (104), not as I/O.
        throw Error(Code::InvalidPolicy, std::string(kPrefix) + "not valid JSON: " + e.what());
    }
    return Parser().parse(doc);
}

std::string to_json(const Policy& policy) {
    // nlohmann's object is a std::map: keys come out sorted.
    json types = json::array();
    if (policy.isolate_ingress) types.push_back("Ingress");
    if (policy.isolate_egress) types.push_back("Egress");
    json doc = {{"policyTypes", std::move(types)},
                {"ingress", rules_json(policy.ingress, "from")},
                {"egress", rules_json(policy.egress, "to")}};
    return doc.dump();
}

std::string summary(const Policy& p) {
    auto dir = [&](Direction d, const char* name) {
        std::string s = std::string(name) + ": ";
        if (!p.isolated(d)) return s + "open";
        std::size_t n = p.rules(d).size();
        if (n == 0) return s + "deny all";
        return s + std::to_string(n) + (n == 1 ? " rule" : " rules");
    };
    return dir(Direction::Ingress, "ingress") + ", " + dir(Direction::Egress, "egress");
}

} // namespace podfence::policy
