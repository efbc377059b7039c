// Network configuration parsing: defaults, every bad-input class and the
// CNI code each gets, annotations, GC input.
#include <doctest/doctest.h>

#include "cni/netconf.hpp"
#include "cni/version.hpp"
#include "common/error.hpp"
#include "netconf_json.hpp"

using namespace podfence;
using namespace podfence::cni;
using nlohmann::json;

namespace {

std::pair<unsigned, std::string> outcome(const std::string& text) {
    try {
        parse_netconf(text);
        return {0, ""};
    } catch (const Error& e) {
        return {static_cast<unsigned>(e.code()), e.what()};
    }
}

json with_annotations(json annotations) {
    json c = minimal_netconf();
    c["capabilities"] = {{"io.kubernetes.cri.pod-annotations", true}};
    c["runtimeConfig"] = {{"io.kubernetes.cri.pod-annotations", std::move(annotations)}};
    return c;
}

} // namespace

TEST_CASE("defaults when podfence keys are absent, for every supported version") {
    for (auto v : kSupportedVersions) {
        CAPTURE(v);
        NetConf c = parse_netconf(minimal_netconf(std::string(v)).dump());
        CHECK(c.cni_version == v);
        CHECK(c.name == "net");
        CHECK(c.type == "podfence");
        CHECK(c.mode == Mode::Tc);
        CHECK(c.xdp_mode == XdpMode::Native);
        CHECK(c.tc_backend == TcBackend::Auto);
        CHECK(c.default_policy == policy::DefaultAction::Allow);
        CHECK(c.bpffs_root == "/sys/fs/bpf");
        CHECK(c.log_file.empty());
        CHECK(c.log_level == LogLevel::Info);
        CHECK(c.source_check);
        CHECK(c.lock_timeout_seconds == 60);
        CHECK_FALSE(c.prev_result.has_value());
        CHECK_FALSE(c.annotations.has_value());
    }
}

TEST_CASE("podfence keys are read; unknown top-level keys are ignored") {
    json c = minimal_netconf();
    c["mode"] = "xdp";
    c["xdpMode"] = "generic";
    c["tcBackend"] = "legacy";
    c["defaultPolicy"] = "deny";
    c["bpffsRoot"] = "/tmp/bpf";
    c["logFile"] = "/var/log/podfence.log";
    c["logLevel"] = "debug";
    c["bandwidth"] = {{"ingressRate", 1}}; // another plugin's key
    c["ipam"] = {{"type", "host-local"}};
    NetConf n = parse_netconf(c.dump());
    CHECK(n.mode == Mode::Xdp);
    CHECK(n.xdp_mode == XdpMode::Generic);
    CHECK(n.tc_backend == TcBackend::Legacy);
    CHECK(n.default_policy == policy::DefaultAction::Deny);
    CHECK(n.bpffs_root == "/tmp/bpf");
    CHECK(n.log_file == "/var/log/podfence.log");
    CHECK(n.log_level == LogLevel::Debug);
    CHECK(to_string(n.mode) == "xdp");
    CHECK(to_string(n.tc_backend) == "legacy");
}

TEST_CASE("every bad-input class gets its CNI code and names the key") {
    struct Row {
        std::string name;
        std::string text;
        unsigned code;
        std::string needle;
    };
    auto set = [](const char* key, json v) {
        json c = minimal_netconf();
        c[key] = std::move(v);
        return c.dump();
    };
    json no_version = minimal_netconf();
    no_version.erase("cniVersion");
    const Row rows[] = {
        {"not JSON", "{\"cniVersion\": ", 6, "not valid JSON"},
        {"JSON but not an object", "[1,2]", 6, "object"},
        {"empty stdin", "", 6, "JSON"},
        {"cniVersion missing", no_version.dump(), 1, "cniVersion"},
        {"cniVersion unsupported", minimal_netconf("0.2.0").dump(), 1, "\"0.2.0\""},
        {"cniVersion future", minimal_netconf("2.0.0").dump(), 1, "2.0.0"},
        {"cniVersion not a string", set("cniVersion", 1), 1, "cniVersion"},
        {"unknown mode", set("mode", "foo"), 7, "mode: \"foo\" is not one of tc, xdp"},
        {"mode wrong type", set("mode", 3), 7, "mode"},
        {"unknown xdpMode", set("xdpMode", "offload"), 7, "xdpMode: \"offload\""},
        {"unknown tcBackend", set("tcBackend", "ebpf"), 7,
         "tcBackend: \"ebpf\" is not one of auto, tcx, legacy"},
        {"unknown defaultPolicy", set("defaultPolicy", "block"), 7, "defaultPolicy: \"block\""},
        {"defaultPolicy wrong type", set("defaultPolicy", false), 7, "defaultPolicy"},
        {"unknown logLevel", set("logLevel", "trace"), 7, "logLevel: \"trace\""},
        {"relative bpffsRoot", set("bpffsRoot", "sys/fs/bpf"), 7, "bpffsRoot"},
        {"empty bpffsRoot", set("bpffsRoot", ""), 7, "bpffsRoot"},
        {"relative logFile", set("logFile", "log.txt"), 7, "logFile"},
        {"sourceCheck a string", set("sourceCheck", "false"), 7,
         "sourceCheck: must be true or false, got string \"false\""},
        {"sourceCheck a number", set("sourceCheck", 0), 7, "sourceCheck"},
        {"lockTimeoutSeconds zero", set("lockTimeoutSeconds", 0), 7,
         "lockTimeoutSeconds: must be a whole number from 1 to 3600, got 0"},
        {"lockTimeoutSeconds negative", set("lockTimeoutSeconds", -5), 7, "lockTimeoutSeconds"},
        {"lockTimeoutSeconds a fraction", set("lockTimeoutSeconds", 1.5), 7, "lockTimeoutSeconds"},
        {"lockTimeoutSeconds a string", set("lockTimeoutSeconds", "30"), 7, "lockTimeoutSeconds"},
        {"lockTimeoutSeconds too long", set("lockTimeoutSeconds", 3601), 7, "lockTimeoutSeconds"},
        {"name wrong type", set("name", 5), 7, "name"},
        {"capabilities not an object", set("capabilities", "x"), 7, "capabilities"},
        {"capability not a bool", set("capabilities", {{"io.kubernetes.cri.pod-annotations", "yes"}}), 7,
         "capabilities"},
        {"capability podfence cannot honour", set("capabilities", {{"portMappings", true}}), 2,
         "portMappings"},
        {"runtimeConfig not an object", set("runtimeConfig", json::array()), 7, "runtimeConfig"},
        {"prevResult not an object", set("prevResult", "x"), 7, "prevResult"},
        {"annotations not an object", with_annotations("x").dump(), 7, "io.kubernetes.cri.pod-annotations"},
        {"annotation value not a string", with_annotations({{"podfence.io/policy", {{"ingress", 1}}}}).dump(),
         7, "podfence.io/policy"},
        {"other annotation not a string", with_annotations({{"a", 1}}).dump(), 7, "[\"a\"]"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.name);
        auto [code, msg] = outcome(r.text);
        CHECK(code == r.code);
        CHECK_MESSAGE(msg.find(r.needle) != std::string::npos, msg);
    }
}

TEST_CASE("sourceCheck: on by default, false turns it off, null keeps the default") {
    json c = minimal_netconf();
    c["sourceCheck"] = false;
    CHECK_FALSE(parse_netconf(c.dump()).source_check);
    c["sourceCheck"] = true;
    CHECK(parse_netconf(c.dump()).source_check);
    c["sourceCheck"] = nullptr;
    CHECK(parse_netconf(c.dump()).source_check);
}

TEST_CASE("lockTimeoutSeconds: a whole number of seconds") {
    json c = minimal_netconf();
    c["lockTimeoutSeconds"] = 5;
    CHECK(parse_netconf(c.dump()).lock_timeout_seconds == 5);
    c["lockTimeoutSeconds"] = nullptr;
    CHECK(parse_netconf(c.dump()).lock_timeout_seconds == 60);
}

TEST_CASE("a declared but false capability is fine") {
    json c = minimal_netconf();
    c["capabilities"] = {{"portMappings", false}, {"io.kubernetes.cri.pod-annotations", true}};
    CHECK(outcome(c.dump()).first == 0);
}

TEST_CASE("policy annotation: present, absent, no capability args") {
    SUBCASE("present") {
        NetConf c = parse_netconf(
            with_annotations({{"podfence.io/policy", "{\"ingress\":[]}"}, {"other", "v"}}).dump());
        REQUIRE(c.annotations.has_value());
        CHECK(c.annotations->size() == 2);
        CHECK(c.policy_annotation() == std::optional<std::string>("{\"ingress\":[]}"));
    }
    SUBCASE("other annotations only") {
        NetConf c = parse_netconf(with_annotations({{"foo", "bar"}}).dump());
        CHECK(c.annotations.has_value());
        CHECK_FALSE(c.policy_annotation().has_value());
    }
    SUBCASE("runtime passed no annotations (capability not declared, or ctr run --cni)") {
        NetConf c = parse_netconf(minimal_netconf().dump());
        CHECK_FALSE(c.annotations.has_value());
        CHECK_FALSE(c.policy_annotation().has_value());
    }
    SUBCASE("null annotations count as none") {
        json j = minimal_netconf();
        j["runtimeConfig"] = {{"io.kubernetes.cri.pod-annotations", nullptr}};
        CHECK_FALSE(parse_netconf(j.dump()).policy_annotation().has_value());
    }
}

TEST_CASE("prevResult is kept raw") {
    json c = minimal_netconf("1.0.0");
    c["prevResult"] = {{"cniVersion", "1.0.0"}, {"interfaces", json::array()}, {"x-extra", 1}};
    NetConf n = parse_netconf(c.dump());
    REQUIRE(n.prev_result.has_value());
    CHECK((*n.prev_result)["x-extra"] == 1);
}

TEST_CASE("sniff_cni_version for error replies") {
    CHECK(sniff_cni_version(minimal_netconf("0.4.0").dump()) == "0.4.0");
    CHECK(sniff_cni_version("not json").empty());
    CHECK(sniff_cni_version("{\"cniVersion\": 4}").empty());
}

TEST_CASE("GC input: valid-attachments, the older key, and malformed requests") {
    auto gc = [](const char* key, json list) {
        json c = minimal_netconf();
        c[key] = std::move(list);
        return parse_netconf(c.dump());
    };
    json two =
        json::array({{{"containerID", "a"}, {"ifname", "eth0"}}, {{"containerID", "b"}, {"ifname", "net1"}}});
    for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
        CAPTURE(key);
        auto list = parse_valid_attachments(gc(key, two));
        REQUIRE(list);
        REQUIRE(list->size() == 2);
        CHECK((*list)[0] == AttachmentId{"a", "eth0"});
        CHECK((*list)[1] == AttachmentId{"b", "net1"});
    }
    SUBCASE("valid-attachments wins over attachments") {
        json c = minimal_netconf();
        c["cni.dev/valid-attachments"] = json::array();
        c["cni.dev/attachments"] = two;
        auto list = parse_valid_attachments(parse_netconf(c.dump()));
        REQUIRE(list);
        CHECK(list->empty());
    }
    SUBCASE("neither key: no list (libcni's GCNetworkList(list, nil): nothing of the network is valid)") {
        CHECK_FALSE(parse_valid_attachments(parse_netconf(minimal_netconf().dump())).has_value());
    }
    SUBCASE("wrong shapes: code 7 naming the field") {
        for (json bad : {json("x"), json::array({1}), json::array({{{"containerID", "a"}}}),
                         json::array({{{"containerID", 1}, {"ifname", "eth0"}}})}) {
            CAPTURE(bad.dump());
            try {
                parse_valid_attachments(gc("cni.dev/valid-attachments", bad));
                FAIL("expected an error");
            } catch (const Error& e) {
                CHECK(e.code() == Code::InvalidConfig);
                CHECK(std::string(e.what()).find("cni.dev/valid-attachments") != std::string::npos);
            }
        }
    }
}
