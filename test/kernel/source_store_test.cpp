// PolicyStore's source check state: pf_sources entries and PF_POD_SRC_CHECK
// per slot, kept by replace(), removed by clear(), never inherited.
#include <doctest/doctest.h>

#include <bpf/bpf.h>

#include "bpf/datapath.hpp"
#include "bpf/policy_store.hpp"
#include "common/error.hpp"
#include "kernel/kernel_fixture.hpp"
#include "kernel/policy_entries.hpp"

using namespace podfence;

namespace {

policy::SourceAddr src(const char* text) {
    return *policy::parse_source(text);
}

std::uint32_t pod_flags(const bpf::Datapath& dp, std::uint32_t slot) {
    pf_pod pod{};
    REQUIRE(bpf_map_lookup_elem(dp.pods_map(), &slot, &pod) == 0);
    return pod.flags;
}

} // namespace

TEST_CASE("policy_store: source check (spoof) seeded before activation, kept by replace, cleared") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::Datapath dp = bpf::Datapath::open_or_load(fs.path());
    REQUIRE(dp.sources_map() >= 0);
    bpf::PolicyStore store(dp);

    const policy::PodSources a{true, {src("10.99.0.5"), src("fd99::5")}};
    store.set_sources(6, a);
    // Seeded but not active: the engine still drops everything of the slot,
    // and the slot is taken.
    CHECK(pod_flags(dp, 6) == PF_POD_SRC_CHECK);
    CHECK(store.read_sources(6).check);
    CHECK(store.read_sources(6).addrs == a.addrs);

    store.replace(6, pftk::allow_tcp_from("10.251.0.1", 8080));
    CHECK(pod_flags(dp, 6) == (PF_POD_ACTIVE | PF_POD_SRC_CHECK));
    store.replace(6, pftk::allow_tcp_from("10.251.0.2", 80)); // podfence update
    CHECK(pod_flags(dp, 6) == (PF_POD_ACTIVE | PF_POD_SRC_CHECK));
    CHECK(store.read_sources(6).addrs == a.addrs);

    store.set_sources(7, {true, {src("10.99.0.7")}});
    store.clear(6);
    CHECK(pod_flags(dp, 6) == 0);
    CHECK_FALSE(store.read_sources(6).check);
    CHECK(store.read_sources(6).addrs.empty());
    CHECK(store.read_sources(7).addrs.size() == 1); // other slots untouched

    // Reuse with the check off: no flag, no addresses.
    store.set_sources(6, {false, {}});
    store.replace(6, pftk::allow_tcp_from("10.251.0.1", 8080));
    CHECK(pod_flags(dp, 6) == PF_POD_ACTIVE);
    CHECK(store.read_sources(6).addrs.empty());
}

TEST_CASE("policy_store: source check (spoof) beyond the per-pod limit fails with 102 naming it") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::Datapath dp = bpf::Datapath::open_or_load(fs.path());
    policy::PodSources many{true, {}};
    for (int i = 0; i <= PF_POD_MAX_SOURCES; ++i) {
        std::string a = "10.99.1.";
        a += std::to_string(i);
        many.addrs.push_back(src(a.c_str()));
    }
    try {
        bpf::PolicyStore(dp).set_sources(3, many);
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Code::MapSeed);
        std::string want = "limit of ";
        want += std::to_string(PF_POD_MAX_SOURCES);
        CHECK(std::string(e.what()).find(want) != std::string::npos);
    }
    CHECK(bpf::PolicyStore(dp).read_sources(3).addrs.empty());
}
