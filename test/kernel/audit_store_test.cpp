// PolicyStore's enforcement state: PF_POD_AUDIT set with the activation,
// kept or switched by replace(), switched alone by set_audit() with a new
// revision, cleared with the slot.
#include <doctest/doctest.h>

#include <bpf/bpf.h>

#include "bpf/datapath.hpp"
#include "bpf/policy_store.hpp"
#include "common/error.hpp"
#include "kernel/kernel_fixture.hpp"
#include "kernel/policy_entries.hpp"

using namespace podfence;

namespace {

pf_pod pod_of(const bpf::Datapath& dp, std::uint32_t slot) {
    pf_pod pod{};
    REQUIRE(bpf_map_lookup_elem(dp.pods_map(), &slot, &pod) == 0);
    return pod;
}

} // namespace

TEST_CASE("policy_store: audit flag set with activation, switched with a new revision") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::Datapath dp = bpf::Datapath::open_or_load(fs.path());
    bpf::PolicyStore store(dp);
    const auto pol = pftk::allow_tcp_from("10.251.0.1", 8080);

    store.set_sources(9, {true, {*policy::parse_source("10.99.0.9")}});
    const auto rev1 = store.replace(9, pol, 0, true); // ADD of an audit pod
    CHECK(pod_of(dp, 9).flags == (PF_POD_ACTIVE | PF_POD_SRC_CHECK | PF_POD_AUDIT));
    CHECK(pod_of(dp, 9).rev == rev1);

    const auto rev2 = store.replace(9, pol); // policy only: mode kept
    CHECK(rev2 > rev1);
    CHECK(pod_of(dp, 9).flags == (PF_POD_ACTIVE | PF_POD_SRC_CHECK | PF_POD_AUDIT));

    const auto rev3 = store.set_audit(9, false); // to enforce: new revision
    CHECK(rev3 > rev2);
    CHECK(pod_of(dp, 9).flags == (PF_POD_ACTIVE | PF_POD_SRC_CHECK));
    CHECK(pod_of(dp, 9).rev == rev3);
    CHECK(store.set_audit(9, false) == rev3); // already: nothing changes
    CHECK(pod_of(dp, 9).rev == rev3);
    CHECK(store.read(9).size() == pol.size()); // the policy map stays

    const auto rev4 = store.replace(9, pol, 0, true); // policy and mode in one step
    CHECK(rev4 > rev3);
    CHECK(pod_of(dp, 9).flags == (PF_POD_ACTIVE | PF_POD_SRC_CHECK | PF_POD_AUDIT));
    const auto rev5 = store.replace(9, pol, 0, false);
    CHECK(rev5 > rev4);
    CHECK(pod_of(dp, 9).flags == (PF_POD_ACTIVE | PF_POD_SRC_CHECK));

    // No pod on the slot: nothing to switch.
    CHECK_THROWS_AS(store.set_audit(10, true), Error);
    CHECK(pod_of(dp, 10).flags == 0);

    store.set_audit(9, true);
    store.clear(9);
    CHECK(pod_of(dp, 9).flags == 0);
    // The next pod on the slot starts from its own mode, not the last one's.
    store.replace(9, pol);
    CHECK(pod_of(dp, 9).flags == PF_POD_ACTIVE);
}
