// prevResult parsing across versions, and ADD's output conversion.
#include <doctest/doctest.h>

#include "cni/result.hpp"
#include "cni/version.hpp"
#include "common/error.hpp"

using namespace podfence;
using namespace podfence::cni;
using nlohmann::json;

namespace {

// What bridge + host-local produce, in the shape of `version`.
json bridge_result(const std::string& version) {
    bool versioned = result_has_ip_version(version);
    json ip4 = {{"address", "10.99.0.5/24"}, {"gateway", "10.99.0.1"}, {"interface", 2}};
    json ip6 = {{"address", "fd99::5/64"}, {"gateway", "fd99::1"}, {"interface", 2}};
    if (versioned) {
        ip4["version"] = "4";
        ip6["version"] = "6";
    }
    return {{"cniVersion", version},
            {"interfaces",
             json::array({{{"name", "cni0"}, {"mac", "aa:bb:cc:00:00:01"}},
                          {{"name", "veth1234"}, {"mac", "aa:bb:cc:00:00:02"}},
                          {{"name", "eth0"}, {"mac", "aa:bb:cc:00:00:03"}, {"sandbox", "/run/netns/pod"}}})},
            {"ips", json::array({ip4, ip6})},
            {"routes", json::array({{{"dst", "0.0.0.0/0"}, {"gw", "10.99.0.1"}}})},
            {"dns", {{"nameservers", json::array({"10.96.0.10"})}}}};
}

std::pair<unsigned, std::string> outcome(const json& prev, const std::string& version) {
    try {
        parse_result(prev, version);
        return {0, ""};
    } catch (const Error& e) {
        return {static_cast<unsigned>(e.code()), e.what()};
    }
}

} // namespace

TEST_CASE("a bridge result parses in every supported version") {
    for (auto vv : kSupportedVersions) {
        std::string v(vv);
        CAPTURE(v);
        Result r = parse_result(bridge_result(v), v);
        REQUIRE(r.interfaces.size() == 3);
        CHECK(r.interfaces[1].name == "veth1234");
        CHECK_FALSE(r.interfaces[1].sandbox.has_value());
        CHECK(r.interfaces[2].sandbox == std::optional<std::string>("/run/netns/pod"));
        REQUIRE(r.ips.size() == 2);
        CHECK(r.ips[0].family == 4);
        CHECK(r.ips[1].family == 6);
        CHECK(r.ips[0].interface == std::optional<int>(2));
        CHECK(r.ips[0].gateway == "10.99.0.1");
        REQUIRE(r.routes.size() == 1);
        CHECK(r.routes[0].gw == "10.99.0.1");
        CHECK(r.dns["nameservers"][0] == "10.96.0.10");
        CHECK(r.has_host_interface("veth1234"));
        CHECK(r.has_host_interface("cni0"));
        CHECK_FALSE(r.has_host_interface("eth0")); // has a sandbox
        CHECK_FALSE(r.has_host_interface("veth9999"));
    }
}

TEST_CASE("an empty sandbox string means a host interface") {
    json p = bridge_result("1.0.0");
    p["interfaces"][1]["sandbox"] = "";
    CHECK(parse_result(p, "1.0.0").has_host_interface("veth1234"));
}

TEST_CASE("0.x results without ips[].version are accepted; a wrong one is not") {
    json p = bridge_result("0.4.0");
    p["ips"][0].erase("version");
    CHECK(outcome(p, "0.4.0").first == 0);
    p["ips"][0]["version"] = "6";
    auto [code, msg] = outcome(p, "0.4.0");
    CHECK(code == 7);
    CHECK(msg.find("prevResult.ips[0].version") != std::string::npos);
}

TEST_CASE("malformed prevResult fields: code 7 naming the field") {
    struct Row {
        const char* name;
        json prev;
        const char* needle;
    };
    auto mod = [](auto f) {
        json p = bridge_result("1.0.0");
        f(p);
        return p;
    };
    const Row rows[] = {
        {"interfaces not array", mod([](json& p) { p["interfaces"] = "x"; }), "prevResult.interfaces"},
        {"interface without name", mod([](json& p) { p["interfaces"][0].erase("name"); }),
         "prevResult.interfaces[0].name"},
        {"sandbox not string", mod([](json& p) { p["interfaces"][2]["sandbox"] = 1; }),
         "prevResult.interfaces[2].sandbox"},
        {"ip without address", mod([](json& p) { p["ips"][1].erase("address"); }),
         "prevResult.ips[1].address"},
        {"address without prefix", mod([](json& p) { p["ips"][0]["address"] = "10.99.0.5"; }),
         "prevResult.ips[0].address"},
        {"address garbage", mod([](json& p) { p["ips"][0]["address"] = "ten/8"; }),
         "prevResult.ips[0].address"},
        {"prefix too long", mod([](json& p) { p["ips"][0]["address"] = "10.0.0.1/33"; }),
         "prevResult.ips[0].address"},
        {"gateway of other family", mod([](json& p) { p["ips"][0]["gateway"] = "fd99::1"; }),
         "prevResult.ips[0].gateway"},
        {"interface index out of range", mod([](json& p) { p["ips"][0]["interface"] = 3; }),
         "prevResult.ips[0].interface"},
        {"interface index negative", mod([](json& p) { p["ips"][0]["interface"] = -1; }),
         "prevResult.ips[0].interface"},
        {"route without dst", mod([](json& p) { p["routes"][0].erase("dst"); }), "prevResult.routes[0].dst"},
        {"dns not object", mod([](json& p) { p["dns"] = json::array(); }), "prevResult.dns"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.name);
        auto [code, msg] = outcome(r.prev, "1.0.0");
        CHECK(code == 7);
        CHECK_MESSAGE(msg.find(r.needle) != std::string::npos, msg);
    }
}

TEST_CASE("output: prevResult unchanged except cniVersion and ips[].version") {
    SUBCASE("same version: identical") {
        for (auto vv : kSupportedVersions) {
            std::string v(vv);
            CAPTURE(v);
            CHECK(convert_result(bridge_result(v), v) == bridge_result(v));
        }
    }
    SUBCASE("0.4.0 -> 1.0.0 drops ips[].version") {
        json out = convert_result(bridge_result("0.4.0"), "1.0.0");
        CHECK(out == bridge_result("1.0.0"));
        CHECK_FALSE(out["ips"][0].contains("version"));
    }
    SUBCASE("1.0.0 -> 0.4.0 adds ips[].version by address family") {
        json out = convert_result(bridge_result("1.0.0"), "0.4.0");
        CHECK(out == bridge_result("0.4.0"));
        CHECK(out["ips"][0]["version"] == "4");
        CHECK(out["ips"][1]["version"] == "6");
    }
    SUBCASE("1.1.0 <-> 0.3.0 and 0.3.1") {
        CHECK(convert_result(bridge_result("1.1.0"), "0.3.0") == bridge_result("0.3.0"));
        CHECK(convert_result(bridge_result("0.3.1"), "1.1.0") == bridge_result("1.1.0"));
    }
    SUBCASE("unknown fields pass through untouched") {
        json p = bridge_result("1.1.0");
        p["interfaces"][2]["mtu"] = 1450;
        p["routes"][0]["priority"] = 7;
        p["x-future"] = {{"a", 1}};
        json out = convert_result(p, "1.1.0");
        CHECK(out == p);
    }
    SUBCASE("a result without ips") {
        json p = {{"cniVersion", "0.4.0"}, {"interfaces", json::array()}};
        json out = convert_result(p, "1.0.0");
        CHECK(out["cniVersion"] == "1.0.0");
        CHECK_FALSE(out.contains("ips"));
    }
}

TEST_CASE("versions compare numerically") {
    CHECK(compare_versions("0.3.1", "0.4.0") < 0);
    CHECK(compare_versions("1.1.0", "1.0.0") > 0);
    CHECK(compare_versions("1.10.0", "1.9.0") > 0);
    CHECK(compare_versions("1.0", "1.0.0") == 0);
    CHECK(result_has_ip_version("0.4.0"));
    CHECK_FALSE(result_has_ip_version("1.0.0"));
    CHECK(is_supported_version("1.1.0"));
    CHECK_FALSE(is_supported_version("0.2.0"));
    CHECK(address_family("fd00::1") == 6);
    CHECK(address_family("10.0.0.1/8") == 4);
    CHECK(address_family("nope") == 0);
}
