// The attachment record's one JSON form (bpf::to_json / record_from_json):
// what ADD pins, what `inspect --json` prints, and the forms earlier podfence
// versions pinned, which DEL, GC and CHECK must still read after an upgrade.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "bpf/state.hpp"

using namespace podfence;
using nlohmann::json;

namespace {

bpf::AttachmentRecord sample(bpf::AttachMode mode) {
    bpf::AttachmentRecord r;
    r.container_id = "c1";
    r.ifname = "eth0";
    r.network = "net-a";
    r.netns = "/run/netns/p1";
    r.mode = mode;
    r.datapath_dir = "/sys/fs/bpf/podfence/datapath-abi4-0123456789abcdef";
    r.host_ifname = "veth1";
    r.host_ifindex = 12;
    r.pod_ifindex = 2;
    r.slot = 7;
    r.rev = 3;
    r.policy_json = R"({"egress":[],"ingress":[],"policyTypes":["Ingress"]})";
    r.source_check = true;
    r.sources = {"10.0.0.5"};
    return r;
}

} // namespace

TEST_CASE("record JSON: every field and every mode survive a round trip") {
    for (auto mode : {bpf::AttachMode::Tcx, bpf::AttachMode::TcLegacy, bpf::AttachMode::XdpNative,
                      bpf::AttachMode::XdpGeneric}) {
        CAPTURE(bpf::to_string(mode));
        const auto r = sample(mode);
        const json j = bpf::to_json(r);
        CHECK(j.at("containerID") == "c1");
        CHECK(j.at("hostIfname") == "veth1");
        CHECK(j.at("policy").is_object()); // readable in `inspect --json`
        const auto back = bpf::record_from_json(json::parse(j.dump()));
        CHECK(bpf::to_json(back) == j);
        CHECK(back.mode == mode);
        CHECK(back.policy_json == r.policy_json);
    }
    CHECK(bpf::to_json(sample(bpf::AttachMode::TcLegacy)).at("tcBackend") == "legacy");
    CHECK(bpf::to_json(sample(bpf::AttachMode::XdpGeneric)).at("mode") == "xdp");
}

TEST_CASE("record JSON: records of earlier versions still read") {
    // As pinned before the one JSON form: "containerId", the policy as a
    // string, and (older still) no network or source check keys.
    const json old = {{"containerId", "c1"},
                      {"ifname", "eth0"},
                      {"netns", "/run/netns/p1"},
                      {"mode", "xdp"},
                      {"tcBackend", ""},
                      {"xdpMode", "generic"},
                      {"datapathDir", "/x"},
                      {"hostIfname", "veth1"},
                      {"hostIfindex", 12},
                      {"podIfindex", 2},
                      {"slot", 7},
                      {"rev", 3},
                      {"legacyQdiscCreated", false},
                      {"policy", R"({"egress":[]})"}};
    const auto r = bpf::record_from_json(old);
    CHECK(r.container_id == "c1");
    CHECK(r.mode == bpf::AttachMode::XdpGeneric);
    CHECK(r.network.empty());
    CHECK_FALSE(r.source_check);
    CHECK(r.policy_json == R"({"egress":[]})");
}

TEST_CASE("record JSON: a hook this binary does not know reads as Unknown; a missing key throws") {
    json j = bpf::to_json(sample(bpf::AttachMode::Tcx));
    j["tcBackend"] = "tcx-next";
    CHECK(bpf::record_from_json(j).mode == bpf::AttachMode::Unknown);
    j.erase("slot");
    CHECK_THROWS_AS(bpf::record_from_json(j), json::exception);
}
