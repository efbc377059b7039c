// Verbs killed part way, in process: a forked child runs the verb under a
// seccomp filter that hands each call of one syscall to the parent
// (SECCOMP_RET_USER_NOTIF); the parent lets the first n-1 calls run and
// SIGKILLs the child at the n-th, before the kernel performs it, as
// `strace -e inject=NAME:signal=KILL:when=N` does in
// integration/crash_sweep.sh (which sweeps every syscall of every verb).
// Here: the kill points where the sweep found defects. After each kill, DEL
// must leave nothing of the pod (interfaces exactly as before the ADD) and a
// new ADD must attach it again.
#include <doctest/doctest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../../bpf/podfence_abi.h"
#include "bpf/attach.hpp"
#include "bpf/datapath.hpp"
#include "bpf/layout.hpp"
#include "bpf/policy_store.hpp"
#include "bpf/state.hpp"
#include "cni/env.hpp"
#include "cni/netconf.hpp"
#include "common/fd.hpp"
#include "kernel/kernel_fixture.hpp"
#include "netlink/netlink.hpp"
#include "netlink/netns.hpp"
#include "verbs/verbs.hpp"

using namespace podfence;
using nlohmann::json;
namespace layout = bpf::layout;
namespace fs = std::filesystem;

namespace {

enum class Outcome { Killed, Finished, Failed };

// Runs f in a child process killed (SIGKILL) at its n-th call of syscall nr:
// Killed; Finished if f returned before, Failed if it threw. nr must not be
// write(2), which the child uses to hand its listener fd over.
Outcome kill_at(long nr, int n, const std::function<void()>& f) {
    int pipefd[2];
    REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        sock_filter prog[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        const sock_fprog fprog{static_cast<unsigned short>(std::size(prog)), prog};
        int listener = -1;
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)
            listener = static_cast<int>(
                ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog));
        if (::write(pipefd[1], &listener, sizeof listener) != sizeof listener || listener < 0) ::_exit(3);
        try {
            f();
        } catch (...) {
            ::_exit(1);
        }
        ::_exit(0);
    }
    ::close(pipefd[1]);
    int child_fd = -1;
    const bool got = ::read(pipefd[0], &child_fd, sizeof child_fd) == sizeof child_fd && child_fd >= 0;
    ::close(pipefd[0]);
    bool killed = false;
    if (got) {
        UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
        UniqueFd listener(pidfd ? static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), child_fd, 0))
                                : -1);
        int seen = 0;
        while (listener) {
            pollfd p{listener.get(), POLLIN, 0};
            if (::poll(&p, 1, 30000) <= 0 || !(p.revents & POLLIN)) break; // POLLHUP: the child is gone
            seccomp_notif req{};
            if (::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
                if (errno == EINTR || errno == ENOENT) continue;
                break;
            }
            if (++seen == n) { // stopped before the call: it never runs
                killed = ::kill(pid, SIGKILL) == 0;
                break;
            }
            seccomp_notif_resp resp{};
            resp.id = req.id;
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            ::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_SEND, &resp); // ENOENT: it died meanwhile
        }
    }
    if (!killed && got) ::kill(pid, SIGKILL); // a child stuck without a supervisor must not hang the test
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(got);
    if (killed) return Outcome::Killed;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Outcome::Finished;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1) return Outcome::Failed;
    FAIL("the child of kill_at ended with status " << status);
    return Outcome::Failed;
}

// Names per process, with the prefix of integration/crash_sweep.sh but not
// its pfcs-* netns, which it clears when it starts.
const std::string kTag = std::to_string(::getpid() % 100000);
const std::string kHostNs = "pfcsk-h" + kTag, kPodNs = "pfcsk-p" + kTag;
const std::string kHostIf = "pfcsh" + kTag, kPodIf = "pfcse" + kTag;
constexpr const char* kCid = "c0ffee0cra5h";

// What the plugin keeps for a bpffs root outside it (record copies, the
// backup bpffs of the engine arrays): removed with the root.
struct Mirror {
    const pftk::TempBpffs& root;
    ~Mirror() {
        while (::umount2(layout::backup_bpffs(root.path()).c_str(), MNT_DETACH) == 0) {
        }
        std::error_code ec;
        fs::remove_all(layout::mirror_dir(root.path()), ec);
    }
};

// One pod on its veth, a private bpffs; the test thread runs in the host netns.
struct Pod {
    std::string mode, tc_backend;
    pftk::TempBpffs bpffs;
    Mirror mirror{bpffs};
    pftk::Netns host{kHostNs}, ns{kPodNs};
    pftk::Veth veth{kHostIf, kPodIf, kHostNs, kPodNs};
    netlink::NetnsGuard in_host{host.path()};

    Pod(std::string m, std::string backend) : mode(std::move(m)), tc_backend(std::move(backend)) {}
    const std::string& root() const { return bpffs.path(); }
    cni::NetConf conf(const std::string& host_if = kHostIf, const std::string& pod_if = kPodIf) const {
        json c = {{"cniVersion", "1.1.0"}, {"name", "pfcs-net"},      {"type", "podfence"},
                  {"mode", mode},          {"tcBackend", tc_backend}, {"bpffsRoot", root()}};
        c["prevResult"] = {
            {"cniVersion", "1.1.0"},
            {"interfaces", json::array({{{"name", host_if}}, {{"name", pod_if}, {"sandbox", ns.path()}}})},
            {"ips", json::array({{{"address", "10.252.7.2/24"}, {"interface", 1}}})}};
        return cni::parse_netconf(c.dump());
    }
    cni::Env env(cni::Verb v, const std::string& cid = kCid, const std::string& pod_if = kPodIf) const {
        return {v, cid, ns.path(), pod_if, "", {}, "/opt/cni/bin", {}};
    }
    void add() const { verbs::add(env(cni::Verb::Add), conf()); }
    void del() const { verbs::del(env(cni::Verb::Del), conf()); }
    void gc() const { // the pod not valid
        json c = {{"cniVersion", "1.1.0"},
                  {"name", "pfcs-net"},
                  {"type", "podfence"},
                  {"bpffsRoot", root()},
                  {"cni.dev/valid-attachments", json::array()}};
        verbs::gc(cni::Env{}, cni::parse_netconf(c.dump()));
    }
};

std::vector<std::string> unfinished_builds(const std::string& root) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(layout::podfence_dir(root)))
        if (layout::is_tmp_datapath_name(e.path().filename().string()))
            out.push_back(e.path().filename().string());
    return out;
}

// Everything a pod can leave on the host veth, whoever attached it.
std::string host_veth_state() {
    const int ifindex = netlink::get_link(kHostIf)->ifindex;
    std::string s = "qdiscs: " + pftk::capture("tc qdisc show dev " + kHostIf);
    for (auto hook : {bpf::Hook::TcxIngress, bpf::Hook::TcxEgress})
        s += " tcx: " + std::to_string(bpf::tcx_prog_ids(ifindex, hook).size());
    for (bool ingress : {true, false})
        s += " cls_bpf: " + std::to_string(netlink::bpf_filter_prog_id(ifindex, ingress).value_or(0));
    std::uint32_t xdp = 0;
    bpf_xdp_query_id(ifindex, 0, &xdp);
    s += " xdp: " + std::to_string(xdp);
    return s;
}

// Files in the directory of record copies (its bpffs/ aside).
std::vector<std::string> copies(const std::string& root) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(layout::mirror_dir(root), ec))
        if (!e.is_directory()) out.push_back(e.path().filename().string());
    return out;
}

// No record, attachment directory or record copy, no slot in use, and the
// host veth as `before`.
void expect_nothing_left(const Pod& p, const std::string& before) {
    CHECK(bpf::StateStore(p.root()).list().empty());
    const std::string att = layout::attachments_dir(p.root());
    CHECK((!fs::exists(att) || fs::is_empty(att)));
    CHECK(copies(p.root()).empty());
    CHECK(host_veth_state() == before);
    bpf::Datapath dp = bpf::Datapath::open_dir(layout::datapath_dir(p.root(), bpf::embedded_datapath_name()));
    const bpf::PolicyStore store(dp);
    int used = 0;
    for (std::uint32_t s = 0; s < PF_MAX_SLOTS; ++s)
        if (auto pod = store.pod(s); pod && pod->flags != 0) ++used;
    CHECK(used == 0);
}

enum class Verb { Add, Del };
enum class Then { Del, Gc };

// Kills the verb at each call of syscall nr in turn (n = 1, 2, ... until the
// verb finishes first), from the state it starts from (ADD: nothing
// attached, the datapath loaded; DEL: the pod attached); after each kill,
// `then` (DEL, or GC without the pod in the valid list) must leave nothing
// of the pod and the veth as before, and the next ADD and DEL must work.
void sweep(Pod& p, Verb verb, long nr, const std::string& name, Then then) {
    p.add(); // loads the datapath, as on a node with pods
    p.del();
    const std::string pristine = host_veth_state();
    for (int n = 1;; ++n) {
        CAPTURE(name);
        CAPTURE(n);
        if (verb == Verb::Del) REQUIRE_NOTHROW(p.add());
        const Outcome o = kill_at(nr, n, [&] {
            if (verb == Verb::Add)
                p.add();
            else
                p.del();
        });
        REQUIRE(o != Outcome::Failed);
        if (then == Then::Gc)
            CHECK_NOTHROW(p.gc());
        else
            CHECK_NOTHROW(p.del());
        expect_nothing_left(p, pristine);
        if (o == Outcome::Finished) break;
        REQUIRE_NOTHROW(p.add());
        REQUIRE_NOTHROW(p.del());
        expect_nothing_left(p, pristine);
    }
}

} // namespace

// Defect: ADD recorded that it created the clsact qdisc only after creating
// it; killed in between (the netlink answer, the record's rewrite), the
// record did not say so and every later DEL left the qdisc on the veth.
TEST_CASE("crash: tc-legacy ADD killed around the clsact it creates; DEL removes the qdisc") {
    Pod p("tc", "legacy");
    sweep(p, Verb::Add, SYS_recvmsg, "recvmsg", Then::Del);
    sweep(p, Verb::Add, SYS_rename, "rename", Then::Del);
}

// Defect: the first ADD on a node, killed while it loaded the datapath, left
// its tmp-* build (every map of a datapath, the conntrack table included)
// until a later ADD loaded one; DEL and GC kept it. GC removes it now.
TEST_CASE("crash: a first ADD killed mid-load leaves a build that GC removes") {
    Pod p("tc", "auto");
    const std::string pristine = host_veth_state();
    // The rename that publishes the datapath: everything is pinned, aside.
    REQUIRE(kill_at(SYS_rename, 1, [&] { p.add(); }) == Outcome::Killed);
    REQUIRE(unfinished_builds(p.root()).size() == 1);
    CHECK_NOTHROW(p.del()); // no record: nothing of the pod to remove
    CHECK_NOTHROW(p.gc());
    CHECK(unfinished_builds(p.root()).empty());
    CHECK(bpf::StateStore(p.root()).list().empty());
    REQUIRE_NOTHROW(p.add());
    REQUIRE_NOTHROW(p.del());
    expect_nothing_left(p, pristine);
}

// Defect: an ADD killed between writing the record's copy (for repairs) and
// renaming it into place left the .tmp file in /run/podfence for good: DEL
// and GC removed only the copy itself.
TEST_CASE("crash: ADD killed at each rename (record, its copy); DEL and GC leave no copy") {
    for (Then then : {Then::Del, Then::Gc}) {
        Pod p("tc", "auto");
        sweep(p, Verb::Add, SYS_rename, "rename", then);
    }
}

// Defect: a DEL killed after it had unpinned the attachment (its last
// unlinks, the rmdir) left the record's copy in /run/podfence, which only a
// DEL of that pod removed: GC went by the pinned records alone. GC now also
// applies to records left only as a copy.
TEST_CASE("crash: DEL killed while it removes the pins; GC removes the record's copy") {
    Pod p("tc", "auto");
    sweep(p, Verb::Del, SYS_unlink, "unlink", Then::Gc);
    sweep(p, Verb::Del, SYS_rmdir, "rmdir", Then::Gc);
}

// Defect: a verb killed while its slot was free in pf_pods but still named by
// its record (DEL: after clear() zeroed the slot, before the record was
// removed; ADD: after the record, before set_sources) let the next ADD of
// ANOTHER pod take that slot, and the retried DEL of the first pod then
// cleared it: the other pod lost its policy and went inactive. A slot is now
// claimed (PF_POD_CLAIMED) from allocation until its record is gone.
TEST_CASE("crash: a killed verb's slot is not handed to another pod before its DEL is retried") {
    Pod p("tc", "auto");
    const std::string other_host = "pfcsb" + kTag, other_pod = "pfcsf" + kTag;
    pftk::Veth other_veth{other_host, other_pod, kHostNs, kPodNs};
    constexpr const char* kOther = "c0ffee0other";
    const cni::NetConf other_conf = p.conf(other_host, other_pod);
    p.add();
    p.del();
    const std::string pristine = host_veth_state();
    for (Verb verb : {Verb::Add, Verb::Del}) {
        for (int n = 1;; ++n) {
            CAPTURE(verb == Verb::Add ? "ADD" : "DEL");
            CAPTURE(n);
            if (verb == Verb::Del) REQUIRE_NOTHROW(p.add());
            const Outcome o = kill_at(SYS_bpf, n, [&] { verb == Verb::Add ? p.add() : p.del(); });
            REQUIRE(o != Outcome::Failed);
            // Another pod arrives before the runtime retries the DEL.
            REQUIRE_NOTHROW(verbs::add(p.env(cni::Verb::Add, kOther, other_pod), other_conf));
            CHECK_NOTHROW(p.del());
            const auto rec = bpf::StateStore(p.root()).find(kOther, other_pod);
            REQUIRE(rec);
            bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
            const bpf::PolicyStore store(dp);
            const auto pod = store.pod(rec->slot);
            REQUIRE(pod);
            CHECK((pod->flags & PF_POD_ACTIVE) != 0);
            CHECK_FALSE(store.read(rec->slot).empty());
            REQUIRE_NOTHROW(verbs::del(p.env(cni::Verb::Del, kOther, other_pod), other_conf));
            expect_nothing_left(p, pristine);
            if (o == Outcome::Finished) break;
        }
    }
}

// GC frees slots no record names. A record's datapath path is spelled as
// its verb's bpffsRoot was ("/x" or "/x/"): the pod's slot must still count
// as named, or GC would clear every live pod of the node.
TEST_CASE("GC keeps the slot of a pod whose record spells bpffsRoot another way") {
    Pod p("tc", "auto");
    const std::string pristine = host_veth_state();
    p.add();
    json c = {{"cniVersion", "1.1.0"},
              {"name", "pfcs-net"},
              {"type", "podfence"},
              {"bpffsRoot", p.root() + "/"},
              {"cni.dev/valid-attachments", json::array({{{"containerID", kCid}, {"ifname", kPodIf}}})}};
    REQUIRE_NOTHROW(verbs::gc(cni::Env{}, cni::parse_netconf(c.dump())));
    const auto rec = bpf::StateStore(p.root()).find(kCid, kPodIf);
    REQUIRE(rec);
    bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
    const auto pod = bpf::PolicyStore(dp).pod(rec->slot);
    REQUIRE(pod);
    CHECK((pod->flags & PF_POD_ACTIVE) != 0);
    p.del();
    expect_nothing_left(p, pristine);
}

namespace {

// The slots of the pf_sources entries of the node's datapath.
std::vector<std::uint32_t> source_slots(const Pod& p) {
    bpf::Datapath dp = bpf::Datapath::open_dir(layout::datapath_dir(p.root(), bpf::embedded_datapath_name()));
    std::vector<std::uint32_t> out;
    pf_src_key k{}, next{};
    for (const void* prev = nullptr; bpf_map_get_next_key(dp.sources_map(), prev, &next) == 0; prev = &k) {
        out.push_back(next.slot);
        k = next;
    }
    return out;
}

// What a verb killed between claiming a slot and writing its record would
// leave if it had seeded sources: a claimed slot with entries, no record.
void leave_claimed_slot_with_sources(const Pod& p) {
    bpf::Datapath dp = bpf::Datapath::open_dir(layout::datapath_dir(p.root(), bpf::embedded_datapath_name()));
    bpf::PolicyStore store(dp);
    const std::uint32_t slot = store.claim_slot();
    store.set_sources(slot, {true, {*policy::parse_source("10.99.0.44")}});
}

} // namespace

// ADD no longer searches pf_sources for a killed verb's leftovers on the slot
// it takes (that search grew with the pods on the node): clear() keeps a slot
// claimed until everything of it is deleted. Killed at each of its bpf calls
// while it clears such a slot, ADD must never leave it free with entries.
TEST_CASE("crash: a slot being cleared is never free while it still has source entries") {
    Pod p("tc", "auto");
    p.add();
    p.del();
    const std::string pristine = host_veth_state();
    for (int n = 1;; ++n) {
        CAPTURE(n);
        leave_claimed_slot_with_sources(p);
        const Outcome o = kill_at(SYS_bpf, n, [&] { p.add(); });
        REQUIRE(o != Outcome::Failed);
        {
            bpf::Datapath dp =
                bpf::Datapath::open_dir(layout::datapath_dir(p.root(), bpf::embedded_datapath_name()));
            const bpf::PolicyStore store(dp);
            for (std::uint32_t s : source_slots(p)) {
                CAPTURE(s);
                const auto pod = store.pod(s);
                REQUIRE(pod);
                CHECK(pod->flags != 0);
            }
            // Finished: ADD cleared the leftover (and may have taken its
            // slot); only the pod's own address is left.
            if (o == Outcome::Finished) CHECK(source_slots(p).size() == 1);
        }
        CHECK_NOTHROW(p.del());
        expect_nothing_left(p, pristine);
        CHECK(source_slots(p).empty());
        if (o == Outcome::Finished) break;
    }
}

// A free slot's entries (which an older podfence killed mid-clear could
// leave) would let the next pod on that slot send from the old pod's
// addresses: GC deletes them, and keeps a live pod's.
TEST_CASE("GC deletes source check entries of free slots and keeps a live pod's") {
    Pod p("tc", "auto");
    const std::string pristine = host_veth_state();
    p.add();
    const auto rec = bpf::StateStore(p.root()).find(kCid, kPodIf);
    REQUIRE(rec);
    bpf::Datapath dp = bpf::Datapath::open_dir(rec->datapath_dir);
    const std::uint32_t free_slot = rec->slot + 1;
    REQUIRE(bpf::PolicyStore(dp).pod(free_slot)->flags == 0);
    pf_src_key k{};
    k.slot = free_slot;
    k.family = PF_FAMILY_V4;
    const std::uint8_t one = 1, addr[4] = {10, 99, 0, 45};
    std::memcpy(k.addr, addr, sizeof addr);
    REQUIRE(bpf_map_update_elem(dp.sources_map(), &k, &one, BPF_ANY) == 0);
    REQUIRE(source_slots(p).size() == 2);

    json c = {{"cniVersion", "1.1.0"},
              {"name", "pfcs-net"},
              {"type", "podfence"},
              {"bpffsRoot", p.root()},
              {"cni.dev/valid-attachments", json::array({{{"containerID", kCid}, {"ifname", kPodIf}}})}};
    REQUIRE_NOTHROW(verbs::gc(cni::Env{}, cni::parse_netconf(c.dump())));
    CHECK(source_slots(p) == std::vector<std::uint32_t>{rec->slot});
    p.del();
    expect_nothing_left(p, pristine);
}
