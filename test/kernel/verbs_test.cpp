// The verbs in process, as the reference CNI plugins test CmdAdd: a pod
// netns with a real veth whose host side sits in a second throwaway netns,
// a netconf with prevResult and the pod's annotation, and ADD/CHECK/DEL/GC
// called directly. After every failed ADD nothing of the pod may be left:
// no record, no attachment directory, no program on either interface, no
// slot in use, no pf_sources entry.
#include <doctest/doctest.h>

#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bpf/attach.hpp"
#include "bpf/datapath.hpp"
#include "bpf/layout.hpp"
#include "bpf/policy_store.hpp"
#include "bpf/state.hpp"
#include "cni/env.hpp"
#include "cni/netconf.hpp"
#include "common/error.hpp"
#include "kernel/kernel_fixture.hpp"
#include "netlink/netlink.hpp"
#include "netlink/netns.hpp"
#include "verbs/verbs.hpp"

using namespace podfence;
using nlohmann::json;
namespace layout = bpf::layout;
namespace fs = std::filesystem;

namespace {

constexpr const char* kCid = "c0ffee0001";
// Names per process: two trees running the kernel tests at once do not collide.
const std::string kTag = std::to_string(::getpid() % 100000);
const std::string kHostNs = "pftv-h" + kTag, kPodNs = "pftv-p" + kTag; // the runtime's and the pod's
const std::string kHostIf = "pftvh" + kTag, kPodIf = "pftve" + kTag;   // the veth pair
constexpr const char* kPolicy = R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
    "except": ["10.1.0.0/16"]}}], "ports": [{"protocol": "TCP", "port": 8080}]}], "egress": []})";

struct Mode {
    std::string name, mode, tc_backend;
};
const Mode kTc{"tc", "tc", "auto"}, kLegacy{"tc-legacy", "tc", "legacy"}, kXdp{"xdp", "xdp", "auto"};
const Mode kModes[] = {kTc, kLegacy, kXdp};

// One pod: its netns and veth, a private bpffs, and the inputs of its verbs.
// The test thread runs in the "host" netns for the pod's lifetime.
struct Pod {
    const Mode& m;
    pftk::TempBpffs bpffs;
    pftk::Netns host{kHostNs}, ns{kPodNs};
    pftk::Veth veth{kHostIf, kPodIf, kHostNs, kPodNs};
    netlink::NetnsGuard in_host{host.path()};

    // The inputs; reset() restores these correct ones.
    std::string ifname;
    std::optional<std::string> policy;
    json prev;

    explicit Pod(const Mode& mode) : m(mode) { reset(); }
    void reset() {
        ifname = kPodIf;
        policy = kPolicy;
        json host_if = {{"name", kHostIf}}, pod_if = {{"name", kPodIf}, {"sandbox", ns.path()}};
        json ip = {{"address", "10.252.0.2/24"}, {"interface", 1}};
        prev = {{"cniVersion", "1.1.0"},
                {"interfaces", json::array({host_if, pod_if})},
                {"ips", json::array({ip})}};
    }
    const std::string& root() const { return bpffs.path(); }

    cni::NetConf conf(const json& extra = json::object()) const {
        json c = {{"cniVersion", "1.1.0"}, {"name", "pftv-net"},        {"type", "podfence"},
                  {"mode", m.mode},        {"tcBackend", m.tc_backend}, {"bpffsRoot", root()}};
        c["capabilities"][cni::kAnnotationsCapability] = true;
        if (policy) c["runtimeConfig"][cni::kAnnotationsCapability][cni::kPolicyAnnotation] = *policy;
        if (!prev.is_null()) c["prevResult"] = prev;
        c.update(extra);
        return cni::parse_netconf(c.dump());
    }
    cni::Env env(cni::Verb v, std::string netns) const {
        return {v, kCid, std::move(netns), ifname, "", {}, "/opt/cni/bin", {}};
    }
    verbs::Output add() const { return verbs::add(env(cni::Verb::Add, ns.path()), conf()); }
    verbs::Output check() const { return verbs::check(env(cni::Verb::Check, ns.path()), conf()); }
    verbs::Output del() const { return verbs::del(env(cni::Verb::Del, ns.path()), conf()); }
    int host_ifindex() const { return netlink::get_link(kHostIf)->ifindex; }
};

// f() fails with `code`, saying `says` (where it failed).
void expect_error(Code code, const std::string& says, const std::function<void()>& f) {
    try {
        f();
        FAIL_CHECK("no error; expected code " << static_cast<unsigned>(code));
    } catch (const Error& e) {
        INFO("error " << static_cast<unsigned>(e.code()) << ": " << std::string(e.what()));
        CHECK(e.code() == code);
        CHECK(std::string(e.what()).find(says) != std::string::npos);
    }
}

std::uint32_t xdp_prog(int ifindex) {
    std::uint32_t id = 0;
    REQUIRE(bpf_xdp_query_id(ifindex, 0, &id) == 0);
    return id;
}

// What runs on the pod's interfaces, whoever put it there.
struct Hooks {
    std::vector<std::uint32_t> tcx_in, tcx_out;   // host veth tcx
    std::optional<std::uint32_t> cls_in, cls_out; // podfence's legacy cls_bpf filters
    std::string qdiscs;                           // `tc qdisc show` of the host veth
    std::uint32_t xdp_host = 0, xdp_pod = 0;
};

Hooks hooks(const Pod& p) {
    const int h = p.host_ifindex();
    Hooks s{bpf::tcx_prog_ids(h, bpf::Hook::TcxIngress),   bpf::tcx_prog_ids(h, bpf::Hook::TcxEgress),
            netlink::bpf_filter_prog_id(h, true),          netlink::bpf_filter_prog_id(h, false),
            pftk::capture("tc qdisc show dev " + kHostIf), xdp_prog(h)};
    netlink::NetnsGuard in(p.ns.path());
    s.xdp_pod = xdp_prog(netlink::get_link(kPodIf)->ifindex);
    return s;
}

std::string ids(const std::vector<std::uint32_t>& v) {
    std::string s;
    for (auto id : v)
        s += std::to_string(id) + " ";
    return s;
}

void expect_hooks(const Hooks& now, const Hooks& want) {
    INFO("tcx ingress now: " << ids(now.tcx_in) << "want: " << ids(want.tcx_in));
    INFO("tcx egress now: " << ids(now.tcx_out) << "want: " << ids(want.tcx_out));
    CHECK(now.tcx_in == want.tcx_in);
    CHECK(now.tcx_out == want.tcx_out);
    CHECK(now.cls_in == want.cls_in);
    CHECK(now.cls_out == want.cls_out);
    CHECK(now.qdiscs == want.qdiscs);
    CHECK(now.xdp_host == want.xdp_host);
    CHECK(now.xdp_pod == want.xdp_pod);
}

std::size_t map_entries(int map_fd) {
    std::size_t n = 0;
    std::vector<unsigned char> key(64), next(64);
    for (void* prev = nullptr; bpf_map_get_next_key(map_fd, prev, next.data()) == 0; prev = key.data(), ++n)
        key.swap(next);
    return n;
}

// Slots with any pf_pods flag set (in use), and pf_sources entries, in this
// binary's datapath (none before the first ADD loads it).
std::pair<int, std::size_t> slots_and_sources(const std::string& root) {
    const std::string dir = layout::datapath_dir(root, bpf::embedded_datapath_name());
    if (!fs::exists(dir)) return {0, 0};
    bpf::Datapath dp = bpf::Datapath::open_dir(dir);
    bpf::PolicyStore store(dp);
    int used = 0;
    for (std::uint32_t s = 0; s < PF_MAX_SLOTS; ++s)
        if (auto pod = store.pod(s); pod && pod->flags != 0) ++used;
    return {used, map_entries(dp.sources_map())};
}

bool no_attachment_dirs(const std::string& root) {
    const std::string dir = layout::attachments_dir(root);
    return !fs::exists(dir) || fs::is_empty(dir);
}

// Nothing of the pod left, and the interfaces exactly as `before`.
void expect_nothing_left(const Pod& p, const Hooks& before) {
    CHECK(bpf::StateStore(p.root()).list().empty());
    CHECK(no_attachment_dirs(p.root()));
    expect_hooks(hooks(p), before);
    CHECK(slots_and_sources(p.root()) == std::pair<int, std::size_t>{0, 0});
}

std::uint32_t pinned_prog(const std::string& dir, const char* name) {
    UniqueFd fd = bpf::obj_get(layout::pin_path(dir, name));
    return fd ? bpf::prog_id(fd.get()) : 0;
}

// Exactly one attachment, its stubs and only them on the hooks of its mode,
// its slot active with its addresses; CHECK agrees.
void expect_attached(const Pod& p, const Hooks& before) {
    auto recs = bpf::StateStore(p.root()).list();
    REQUIRE(recs.size() == 1);
    const bpf::AttachmentRecord& r = recs[0];
    CHECK(r.container_id == kCid);
    CHECK(r.ifname == kPodIf);
    CHECK(r.network == "pftv-net");
    CHECK(r.host_ifname == kHostIf);
    CHECK(r.host_ifindex == static_cast<std::uint32_t>(p.host_ifindex()));
    // mode tc: the backend tcBackend resolves to; mode xdp: native or generic, whichever took
    if (p.m.mode == "tc") CHECK(r.mode == verbs::attach_mode_for(p.conf()));
    if (p.m.mode == "xdp") CHECK(bpf::is_xdp(r.mode));
    const std::string dir = layout::attachment_dir(p.root(), kCid, kPodIf);
    const std::uint32_t from_pod = pinned_prog(dir, layout::kStubEgress);
    const std::uint32_t to_pod = pinned_prog(dir, layout::kStubIngress);
    REQUIRE(from_pod != 0);
    REQUIRE(to_pod != 0);

    const Hooks now = hooks(p);
    Hooks want = before;
    if (bpf::is_xdp(r.mode)) {
        want.xdp_host = from_pod;
        want.xdp_pod = to_pod;
    } else if (r.mode == bpf::AttachMode::TcLegacy) {
        want.cls_in = from_pod;
        want.cls_out = to_pod;
        CHECK(now.qdiscs.find("qdisc clsact") != std::string::npos);
        want.qdiscs = now.qdiscs;
    } else {
        want.tcx_in.push_back(from_pod);
        want.tcx_out.push_back(to_pod);
    }
    expect_hooks(now, want);

    bpf::Datapath dp = bpf::Datapath::open_dir(r.datapath_dir);
    auto pod = bpf::PolicyStore(dp).pod(r.slot);
    REQUIRE(pod);
    CHECK((pod->flags & PF_POD_ACTIVE) != 0);
    CHECK(slots_and_sources(p.root()) == std::pair<int, std::size_t>{1, 1}); // 10.252.0.2
    CHECK_NOTHROW(p.check());
}

// A correct ADD after a failure works, and its DEL leaves `before`.
void expect_recovers(Pod& p, const Hooks& before) {
    p.reset();
    REQUIRE_NOTHROW(p.add());
    expect_attached(p, before);
    REQUIRE_NOTHROW(p.del());
    expect_nothing_left(p, before);
}

UniqueFd pass_prog(bpf_prog_type type) {
    bpf_insn prog[2] = {};
    prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
    prog[0].imm = type == BPF_PROG_TYPE_XDP ? XDP_PASS : -1 /* TCX_NEXT */;
    prog[1].code = BPF_JMP | BPF_EXIT;
    UniqueFd fd(bpf_prog_load(type, "pftv_other", "GPL", prog, 2, nullptr));
    REQUIRE(fd);
    return fd;
}

// Someone else's native XDP program (netlink attach, not a link) on `ifname`
// in netns `ns`; `ip link set ... xdpdrv off` removes it.
void attach_other_xdp(const std::string& ns, const std::string& ifname) {
    UniqueFd prog = pass_prog(BPF_PROG_TYPE_XDP);
    netlink::NetnsGuard in("/run/netns/" + ns);
    REQUIRE(bpf_xdp_attach(netlink::get_link(ifname)->ifindex, prog.get(), XDP_FLAGS_DRV_MODE, nullptr) == 0);
}

} // namespace

TEST_CASE("verbs: ADD, CHECK, DEL, DEL, re-ADD, ADD again, CHECK, DEL") {
    for (const Mode& m : kModes) {
        CAPTURE(m.name);
        Pod p(m);
        const Hooks pristine = hooks(p);

        auto out = p.add();
        REQUIRE(out);
        CHECK((*out)["interfaces"] == p.prev["interfaces"]); // prevResult passed on
        expect_attached(p, pristine);
        CHECK_NOTHROW(p.del());
        expect_nothing_left(p, pristine);
        expect_error(Code::CheckMismatch, "no podfence attachment", [&] { p.check(); });
        CHECK_NOTHROW(p.del()); // idempotent
        expect_nothing_left(p, pristine);

        REQUIRE_NOTHROW(p.add());
        expect_attached(p, pristine);
        REQUIRE_NOTHROW(p.add()); // a retried ADD replaces, never doubles up
        expect_attached(p, pristine);
        CHECK_NOTHROW(p.del());
        expect_nothing_left(p, pristine);
    }
}

// The policy caps are refused by the same validation step as a named port
// (test/unit/policy_parse_test.cpp covers them); a 500,001-item policy
// here would only cost CI time.
TEST_CASE("verbs: an ADD refused for its input leaves nothing, the next ADD works") {
    struct Bad {
        std::string what;
        Code code;
        std::string says;
        std::function<void(Pod&)> make;
    };
    const Bad bad[] = {
        {"named port", Code::InvalidPolicy, "ingress[0].ports[0].port",
         [](Pod& p) { p.policy = R"({"ingress": [{"ports": [{"port": "http"}]}]})"; }},
        {"policy not JSON", Code::InvalidPolicy, "podfence.io/policy", [](Pod& p) { p.policy = "{ingress"; }},
        {"no such CNI_IFNAME", Code::UnsupportedInterface, "not found",
         [](Pod& p) { p.ifname = "pftv-none"; }},
        {"not a veth", Code::UnsupportedInterface, "needs a veth",
         [](Pod& p) {
             pftk::must("ip -n " + kPodNs + " link add pftv-br0 type bridge");
             p.ifname = "pftv-br0";
         }},
        {"host veth not in prevResult", Code::UnsupportedInterface, "not listed",
         [](Pod& p) { p.prev["interfaces"][0]["name"] = "pftv-other"; }},
        {"9 source addresses", Code::MapSeed, "has 9 addresses",
         [](Pod& p) {
             for (int i = 3; i < 11; ++i)
                 p.prev["ips"].push_back(
                     {{"address", "10.252.0." + std::to_string(i) + "/24"}, {"interface", 1}});
         }},
        {"no prevResult", Code::InvalidConfig, "prevResult", [](Pod& p) { p.prev = nullptr; }},
    };
    for (const Mode& m : kModes) {
        Pod p(m);
        const Hooks pristine = hooks(p);
        for (const Bad& b : bad) {
            CAPTURE(m.name);
            CAPTURE(b.what);
            b.make(p);
            expect_error(b.code, b.says, [&] { p.add(); });
            expect_nothing_left(p, pristine);
            expect_recovers(p, pristine);
        }
    }
}

TEST_CASE("verbs: an ADD failing to attach rolls back all it did, the next ADD works") {
    // ADD fails with 101 naming `says`; the interfaces are as before it, with
    // what others attached, and nothing of the pod is left.
    auto expect_rollback = [](const Pod& p, const std::string& says) {
        const Hooks before = hooks(p);
        expect_error(Code::Attach, says, [&] { p.add(); });
        expect_nothing_left(p, before);
    };
    // Someone else's XDP program on interface `ifname` of netns `ns`.
    auto xdp_taken = [&](const std::string& ns, const std::string& ifname, const std::string& says) {
        Pod p(kXdp);
        attach_other_xdp(ns, ifname);
        expect_rollback(p, says);
        pftk::must("ip -n " + ns + " link set dev " + ifname + " xdpdrv off");
        expect_recovers(p, hooks(p));
    };
    SUBCASE("xdp: another XDP program on the host veth") {
        xdp_taken(kHostNs, kHostIf, "host veth");
    }
    SUBCASE("xdp: another XDP program on the pod's interface, the host veth's attached first") {
        xdp_taken(kPodNs, kPodIf, "the pod's");
    }
    SUBCASE("tc: tcx egress of the host veth full, tcx ingress attached first") {
        Pod p(kTc);
        if (verbs::attach_mode_for(p.conf()) != bpf::AttachMode::Tcx) return; // no tcx here
        {
            std::vector<UniqueFd> progs, links;
            for (int i = 0; i < 1024; ++i) { // the kernel's limit per hook is 64
                progs.push_back(pass_prog(BPF_PROG_TYPE_SCHED_CLS));
                try {
                    links.push_back(
                        bpf::attach_tcx(progs.back().get(), p.host_ifindex(), bpf::Hook::TcxEgress));
                } catch (const Error&) {
                    break;
                }
            }
            REQUIRE(links.size() < 1024);
            expect_rollback(p, "tcx egress");
        }
        expect_recovers(p, hooks(p));
    }
    SUBCASE("tc-legacy: an ingress qdisc holds clsact's place") {
        Pod p(kLegacy);
        pftk::must("tc qdisc add dev " + kHostIf + " ingress");
        expect_rollback(p, "clsact");
        pftk::must("tc qdisc del dev " + kHostIf + " ingress");
        expect_recovers(p, hooks(p));
    }
    SUBCASE("tc-legacy: another filter at podfence's egress priority, the ingress filter added first") {
        Pod p(kLegacy);
        UniqueFd prog = pass_prog(BPF_PROG_TYPE_SCHED_CLS);
        const std::string pin = p.root() + "/pftv_other", dev = " dev " + kHostIf;
        REQUIRE(bpf_obj_pin(prog.get(), pin.c_str()) == 0);
        pftk::must("tc qdisc add" + dev + " clsact");
        pftk::must("tc filter add" + dev + " egress prio " + std::to_string(netlink::kFilterPrio) +
                   " protocol ip bpf da pinned " + pin);
        expect_rollback(p, "egress"); // their clsact and filter are kept
        pftk::must("tc qdisc del" + dev + " clsact");
        expect_recovers(p, hooks(p));
    }
}

TEST_CASE("verbs: ADD with every slot taken, or with bpffs read-only, fails and leaves nothing") {
    for (const Mode& m : kModes) {
        CAPTURE(m.name);
        Pod p(m);
        const Hooks pristine = hooks(p);
        expect_recovers(p, pristine); // loads the datapath

        // Every slot taken, by pods this test makes up.
        auto dp = bpf::Datapath::open_dir(layout::datapath_dir(p.root(), bpf::embedded_datapath_name()));
        auto fill = [&](std::uint32_t flags) {
            const pf_pod pod{0, flags};
            int failed = 0;
            for (std::uint32_t s = 0; s < PF_MAX_SLOTS; ++s)
                failed += bpf_map_update_elem(dp.pods_map(), &s, &pod, BPF_ANY) != 0;
            REQUIRE(failed == 0);
        };
        fill(PF_POD_ACTIVE);
        expect_error(Code::MapSeed, "no free slot", [&] { p.add(); });
        CHECK(bpf::StateStore(p.root()).list().empty());
        CHECK(no_attachment_dirs(p.root()));
        expect_hooks(hooks(p), pristine);
        fill(0);
        expect_nothing_left(p, pristine);
        expect_recovers(p, pristine);

        // bpffs read-only: nothing can be opened for writing or pinned.
        pftk::must("mount -o remount,ro " + p.root());
        expect_error(Code::Io, "Read-only file system", [&] { p.add(); });
        pftk::must("mount -o remount,rw " + p.root());
        expect_nothing_left(p, pristine);
        expect_recovers(p, pristine);
    }
}

TEST_CASE("verbs: DEL without netns and prevResult, and GC, remove everything") {
    for (const Mode& m : kModes) {
        CAPTURE(m.name);
        Pod p(m);
        const Hooks pristine = hooks(p);

        REQUIRE_NOTHROW(p.add());
        expect_attached(p, pristine);
        p.prev = nullptr; // containerd's second DEL
        CHECK_NOTHROW(verbs::del(p.env(cni::Verb::Del, ""), p.conf()));
        expect_nothing_left(p, pristine);

        p.reset();
        REQUIRE_NOTHROW(p.add());
        const json listed = {{"cni.dev/valid-attachments", {{{"containerID", kCid}, {"ifname", kPodIf}}}}};
        CHECK_NOTHROW(verbs::gc(p.env(cni::Verb::Gc, ""), p.conf(listed)));
        expect_attached(p, pristine); // still valid: kept
        const json none = {{"cni.dev/valid-attachments", json::array()}};
        CHECK_NOTHROW(verbs::gc(p.env(cni::Verb::Gc, ""), p.conf(none)));
        expect_nothing_left(p, pristine);
    }
}
