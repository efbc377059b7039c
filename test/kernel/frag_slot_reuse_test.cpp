// Slot reuse (DEL then ADD of another pod on the same slot) through the
// pinned datapath and PolicyStore, as the plugin runs them: the new pod must
// not inherit the datagrams whose first fragment the old pod admitted.
#include <doctest/doctest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>

#include <vector>

#include "bpf/datapath.hpp"
#include "bpf/policy_store.hpp"
#include "support/frames.hpp"
#include "kernel/kernel_fixture.hpp"
#include "kernel/policy_entries.hpp"

using namespace podfence;

namespace {

struct Loaded {
    pftk::TempBpffs fs;
    bpf::Datapath dp = (bpf::ensure_bpffs(fs.path()), bpf::Datapath::open_or_load(fs.path()));
};

// The engine's verdict for `frame` as pod `slot`'s ingress: true = allowed.
bool admitted(const bpf::Datapath& dp, bool xdp, std::uint32_t slot, const pftest::Frame& f) {
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<pf_scratch> sc(static_cast<std::size_t>(ncpu), pf_scratch{slot, PF_DIR_INGRESS});
    std::uint32_t zero = 0;
    REQUIRE(bpf_map_update_elem(dp.scratch_map(), &zero, sc.data(), BPF_ANY) == 0);
    std::vector<std::uint8_t> pkt = pftest::build(f);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(),
                .data_size_in = static_cast<__u32>(pkt.size()), .repeat = 1);
    REQUIRE(bpf_prog_test_run_opts(xdp ? dp.xdp_prog() : dp.tc_prog(), &opts) == 0);
    if (xdp) return opts.retval == XDP_PASS;
    return opts.retval != TC_ACT_SHOT;
}

} // namespace

TEST_CASE("policy_store: a reused slot inherits no fragment state") {
    Loaded l;
    bpf::PolicyStore store(l.dp);
    REQUIRE(l.dp.frags_map() >= 0);
    const auto policy = pftk::allow_tcp_from("10.251.0.1", 8080);
    const pftest::Frame syn = pftest::tcp4("10.251.0.1", 40000, "10.0.0.10", 8080);
    const pftest::Frame first = pftest::fragment(syn, true, 77), later = pftest::fragment(syn, false, 77);
    for (bool xdp : {false, true}) {
        CAPTURE(xdp);
        store.replace(4, policy);
        store.replace(5, policy);
        CHECK(admitted(l.dp, xdp, 4, first));
        CHECK(admitted(l.dp, xdp, 4, later));
        CHECK(admitted(l.dp, xdp, 5, first));

        store.clear(4);           // DEL
        store.replace(4, policy); // ADD of another pod on the slot
        CHECK_FALSE(admitted(l.dp, xdp, 4, later));
        CHECK(admitted(l.dp, xdp, 5, later)); // the neighbour keeps its datagram
        CHECK(admitted(l.dp, xdp, 4, first)); // and the new pod records its own
        CHECK(admitted(l.dp, xdp, 4, later));
        store.clear(4);
        store.clear(5);
    }
}
