// Enforcement (enforce | audit): the netconf's node default, the
// podfence.io/enforcement annotation that overrides it, and what a
// malformed value of each fails with.
#include <doctest/doctest.h>

#include <string>

#include "cni/netconf.hpp"
#include "common/error.hpp"
#include "netconf_json.hpp"
#include "policy/policy.hpp"
#include "verbs/prepare.hpp"

using namespace podfence;
using nlohmann::json;

namespace {

// The error a call throws: code and message ("" / 0 when none).
std::pair<unsigned, std::string> failure(auto&& f) {
    try {
        f();
        return {0, ""};
    } catch (const Error& e) {
        return {static_cast<unsigned>(e.code()), e.what()};
    }
}

json with_annotations(json annotations, const char* enforcement = nullptr) {
    json c = minimal_netconf();
    if (enforcement) c["enforcement"] = enforcement;
    c["runtimeConfig"] = {{"io.kubernetes.cri.pod-annotations", std::move(annotations)}};
    return c;
}

} // namespace

TEST_CASE("enforcement: the two spellings and nothing else") {
    CHECK(policy::parse_enforcement("enforce") == policy::Enforcement::Enforce);
    CHECK(policy::parse_enforcement("audit") == policy::Enforcement::Audit);
    for (const char* bad : {"", "Audit", "AUDIT", "audit ", " enforce", "dryrun", "true", "enforced"}) {
        CAPTURE(bad);
        CHECK_FALSE(policy::parse_enforcement(bad));
    }
    CHECK(policy::to_string(policy::Enforcement::Enforce) == "enforce");
    CHECK(policy::to_string(policy::Enforcement::Audit) == "audit");
}

TEST_CASE("enforcement: netconf default, bad values are invalid netconf (7) naming the key") {
    CHECK(cni::parse_netconf(minimal_netconf().dump()).enforcement == policy::Enforcement::Enforce);
    json c = minimal_netconf();
    c["enforcement"] = "audit";
    CHECK(cni::parse_netconf(c.dump()).enforcement == policy::Enforcement::Audit);
    c["enforcement"] = nullptr; // null = absent, as for the other keys
    CHECK(cni::parse_netconf(c.dump()).enforcement == policy::Enforcement::Enforce);
    for (json bad : {json("Audit"), json("off"), json(true), json(1), json::array()}) {
        CAPTURE(bad.dump());
        c["enforcement"] = bad;
        auto [code, msg] = failure([&] { cni::parse_netconf(c.dump()); });
        CHECK(code == static_cast<unsigned>(Code::InvalidConfig));
        CHECK(msg.find("enforcement") != std::string::npos);
    }
}

TEST_CASE("enforcement: the annotation overrides the netconf, both ways") {
    auto plan = [](const json& c) { return verbs::plan_policy(cni::parse_netconf(c.dump())); };
    CHECK(plan(with_annotations(json::object())).enforcement == policy::Enforcement::Enforce);
    CHECK(plan(with_annotations(json::object(), "audit")).enforcement == policy::Enforcement::Audit);
    CHECK(plan(with_annotations({{"podfence.io/enforcement", "audit"}})).enforcement ==
          policy::Enforcement::Audit);
    CHECK(plan(with_annotations({{"podfence.io/enforcement", "enforce"}}, "audit")).enforcement ==
          policy::Enforcement::Enforce);
    // Independent of the policy annotation.
    auto both = plan(with_annotations(
        {{"podfence.io/enforcement", "audit"}, {"podfence.io/policy", R"({"policyTypes":["Ingress"]})"}}));
    CHECK(both.enforcement == policy::Enforcement::Audit);
    CHECK(both.from_annotation);
}

TEST_CASE("enforcement: a malformed annotation fails with 104 naming podfence.io/enforcement") {
    for (const char* bad : {"Audit", "", "audit,enforce", "{\"mode\":\"audit\"}"}) {
        CAPTURE(bad);
        json c = with_annotations({{"podfence.io/enforcement", bad}}, "audit");
        auto [code, msg] = failure([&] { verbs::plan_policy(cni::parse_netconf(c.dump())); });
        CHECK(code == 104);
        CHECK(code == static_cast<unsigned>(Code::InvalidPolicy));
        CHECK(msg.rfind("podfence.io/enforcement: ", 0) == 0);
    }
    // A non-string annotation is refused by the netconf parser already (7).
    json c = with_annotations({{"podfence.io/enforcement", 1}});
    CHECK(failure([&] { cni::parse_netconf(c.dump()); }).first == static_cast<unsigned>(Code::InvalidConfig));
}
