// GC is per network (spec 1.1): it removes only stale attachments of the
// network named in its input, never those of another network or those
// recorded before records named their network.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bpf/datapath.hpp"
#include "bpf/state.hpp"
#include "cni/env.hpp"
#include "common/error.hpp"
#include "cni/netconf.hpp"
#include "kernel/kernel_fixture.hpp"
#include "verbs/verbs.hpp"

using namespace podfence;

namespace {

// A record with nothing attached: teardown has only the record to remove.
bpf::AttachmentRecord record(const std::string& cid, const std::string& network) {
    bpf::AttachmentRecord r;
    r.container_id = cid;
    r.ifname = "eth0";
    r.network = network;
    r.mode = bpf::AttachMode::Tcx;
    r.policy_json = "{}";
    return r;
}

void gc(const std::string& root, const std::string& network, const nlohmann::json* valid) {
    nlohmann::json c = {
        {"cniVersion", "1.1.0"}, {"name", network}, {"type", "podfence"}, {"bpffsRoot", root}};
    if (valid) c["cni.dev/valid-attachments"] = *valid;
    verbs::gc(cni::Env{}, cni::parse_netconf(c.dump()));
}

std::vector<std::string> cids(const std::string& root) {
    std::vector<std::string> out;
    for (const auto& r : bpf::StateStore(root).list())
        out.push_back(r.container_id);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

TEST_CASE("GC: only the named network's stale attachments; records without a network are kept") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::StateStore st(fs.path());
    st.create(record("a1", "net-a"));
    st.create(record("a2", "net-a"));
    st.create(record("b1", "net-b"));
    st.create(record("old", "")); // written by a podfence before records named their network

    const nlohmann::json keep_a1 = nlohmann::json::array({{{"containerID", "a1"}, {"ifname", "eth0"}}});
    const nlohmann::json none = nlohmann::json::array();

    gc(fs.path(), "net-b", &keep_a1); // a1 is listed, but it is not net-b's: irrelevant here
    CHECK(cids(fs.path()) == std::vector<std::string>{"a1", "a2", "old"});

    gc(fs.path(), "net-a", &keep_a1);
    CHECK(cids(fs.path()) == std::vector<std::string>{"a1", "old"});

    gc(fs.path(), "net-c", &none); // a network with nothing here
    CHECK(cids(fs.path()) == std::vector<std::string>{"a1", "old"});

    gc(fs.path(), "net-a", nullptr); // no list: nothing of net-a is valid
    CHECK(cids(fs.path()) == std::vector<std::string>{"old"});

    SUBCASE("a GC without a network name is refused (code 7)") {
        try {
            gc(fs.path(), "", &none);
            FAIL("expected an error");
        } catch (const Error& e) {
            CHECK(e.code() == Code::InvalidConfig);
            CHECK(std::string(e.what()).find("name") != std::string::npos);
        }
        CHECK(cids(fs.path()) == std::vector<std::string>{"old"});
    }
}

// A verb killed between ADD's mkdir and its record pin (or during DEL's
// unpinning) leaves an attachment directory without a record: DEL of that
// pod and any GC remove it; a directory with a record is not touched.
TEST_CASE("DEL and GC remove attachment directories left without a record") {
    pftk::TempBpffs fs;
    bpf::ensure_bpffs(fs.path());
    bpf::StateStore st(fs.path());
    st.create(record("kept", "net-a"));
    const std::string orphan_a = st.dir_for("orphan-a", "eth0"), orphan_b = st.dir_for("orphan-b", "eth0");
    for (const auto& d : {orphan_a, orphan_b})
        REQUIRE(::mkdir(d.c_str(), 0700) == 0);

    nlohmann::json c = {
        {"cniVersion", "1.1.0"}, {"name", "net-x"}, {"type", "podfence"}, {"bpffsRoot", fs.path()}};
    cni::Env del_env;
    del_env.verb = cni::Verb::Del;
    del_env.container_id = "orphan-a";
    del_env.ifname = "eth0";
    CHECK_NOTHROW(verbs::del(del_env, cni::parse_netconf(c.dump())));
    CHECK(::access(orphan_a.c_str(), F_OK) != 0);
    CHECK(::access(orphan_b.c_str(), F_OK) == 0);

    // A GC of a network that has nothing here still removes the orphan.
    const nlohmann::json none = nlohmann::json::array();
    gc(fs.path(), "net-x", &none);
    CHECK(::access(orphan_b.c_str(), F_OK) != 0);
    CHECK(cids(fs.path()) == std::vector<std::string>{"kept"});
}
