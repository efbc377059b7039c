// The verbs' validation half: everything ADD/CHECK decide before touching
// the system.
#include <doctest/doctest.h>

#include "cni/netconf.hpp"
#include "common/error.hpp"
#include "netconf_json.hpp"
#include "verbs/prepare.hpp"

using namespace podfence;
using namespace podfence::verbs;
using nlohmann::json;

namespace {

cni::NetConf with_policy(const std::string& policy_text, const char* default_policy = "allow") {
    json c = minimal_netconf("1.0.0");
    c["defaultPolicy"] = default_policy;
    c["runtimeConfig"] = {{"io.kubernetes.cri.pod-annotations", {{"podfence.io/policy", policy_text}}}};
    return cni::parse_netconf(c.dump());
}

unsigned code_of(auto&& f) {
    try {
        f();
        return 0;
    } catch (const Error& e) {
        return static_cast<unsigned>(e.code());
    }
}

} // namespace

TEST_CASE("no annotation: the netconf's defaultPolicy") {
    json c = minimal_netconf("1.0.0");
    PolicyPlan allow = plan_policy(cni::parse_netconf(c.dump()));
    CHECK_FALSE(allow.from_annotation);
    CHECK(allow.policy == policy::default_policy(policy::DefaultAction::Allow));
    CHECK(allow.entries == policy::compile(allow.policy));
    c["defaultPolicy"] = "deny";
    PolicyPlan deny = plan_policy(cni::parse_netconf(c.dump()));
    CHECK(deny.policy == policy::default_policy(policy::DefaultAction::Deny));
    CHECK(deny.policy.isolate_ingress);
    CHECK(deny.policy.isolate_egress);
    CHECK(deny.entries != allow.entries);
}

TEST_CASE("the annotation wins over defaultPolicy") {
    const std::string text =
        R"({"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":8080}]}]})";
    PolicyPlan p = plan_policy(with_policy(text, "deny"));
    CHECK(p.from_annotation);
    CHECK(p.policy == policy::parse_policy(text));
    CHECK(p.policy.isolate_ingress);
    CHECK_FALSE(p.policy.isolate_egress);
    CHECK(p.entries == policy::compile(p.policy));
    // The canonical form round-trips.
    CHECK(policy::parse_policy(p.canonical_json) == p.policy);
}

TEST_CASE("a malformed annotation is code 104 and names the field") {
    for (const char* bad : {"not json", R"({"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/33"}}]}]})",
                            R"({"ingress":[{"from":[{"podSelector":{}}]}]})"}) {
        CAPTURE(bad);
        try {
            plan_policy(with_policy(bad));
            FAIL("expected an error");
        } catch (const Error& e) {
            CHECK(e.code() == Code::InvalidPolicy);
            CHECK(std::string(e.what()).find("podfence.io/policy") != std::string::npos);
        }
    }
}

TEST_CASE("ADD/CHECK without prevResult: code 7 explaining chaining") {
    cni::NetConf c = cni::parse_netconf(minimal_netconf("1.0.0").dump());
    try {
        require_prev_result(c);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == Code::InvalidConfig);
        CHECK(std::string(e.what()) == "podfence is a chained plugin: prevResult missing (list it after a "
                                       "primary plugin such as bridge or ptp)");
    }
    json j = minimal_netconf("1.0.0");
    j["prevResult"] = {{"cniVersion", "1.0.0"}, {"interfaces", json::array({{{"name", "veth0"}}})}};
    CHECK(require_prev_result(cni::parse_netconf(j.dump())).has_host_interface("veth0"));
}

TEST_CASE("verbs newer than the configuration's version are refused (code 1)") {
    struct Row {
        cni::Verb verb;
        const char* version;
        bool ok;
    };
    const Row rows[] = {
        {cni::Verb::Check, "0.3.1", false},  {cni::Verb::Check, "0.4.0", true},
        {cni::Verb::Gc, "1.0.0", false},     {cni::Verb::Gc, "1.1.0", true},
        {cni::Verb::Status, "0.4.0", false}, {cni::Verb::Status, "1.1.0", true},
        {cni::Verb::Add, "0.3.0", true},     {cni::Verb::Del, "0.3.0", true},
    };
    for (const Row& r : rows) {
        CAPTURE(cni::verb_name(r.verb));
        CAPTURE(r.version);
        cni::NetConf c = cni::parse_netconf(minimal_netconf(r.version).dump());
        CHECK(code_of([&] { require_verb_version(r.verb, c); }) == (r.ok ? 0u : 1u));
    }
}

TEST_CASE("diff_entries counts missing and unexpected entries, order-insensitive") {
    auto allow = policy::compile(policy::default_policy(policy::DefaultAction::Allow));
    auto deny = policy::compile(policy::default_policy(policy::DefaultAction::Deny));
    REQUIRE_FALSE(allow.empty());
    std::vector<policy::PolicyEntry> reversed(allow.rbegin(), allow.rend());
    CHECK(diff_entries(reversed, allow).empty());
    EntryDiff d = diff_entries({}, allow);
    CHECK(d.missing == allow.size());
    CHECK(d.unexpected == 0);
    auto fewer = allow;
    fewer.pop_back();
    d = diff_entries(allow, fewer);
    CHECK(d.missing == 0);
    CHECK(d.unexpected == 1);
    d = diff_entries(deny, allow);
    CHECK_FALSE(d.empty());
}

TEST_CASE("policy summary for operators") {
    CHECK(policy::summary(policy::default_policy(policy::DefaultAction::Allow)) ==
          "ingress: open, egress: open");
    CHECK(policy::summary(policy::default_policy(policy::DefaultAction::Deny)) ==
          "ingress: deny all, egress: deny all");
    policy::Policy p = policy::parse_policy(
        R"({"policyTypes":["Ingress","Egress"],"ingress":[{},{}],"egress":[{"ports":[{"port":53,"protocol":"UDP"}]}]})");
    CHECK(policy::summary(p) == "ingress: 2 rules, egress: 1 rule");
}
