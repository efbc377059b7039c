// The operator CLI's argument parsing: each command takes only its own
// options (an option it does not take is an error, never silently ignored),
// values are checked, and the pod identity of CNI_ARGS.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/records.hpp"
#include "cni/env.hpp"
#include "common/error.hpp"

using podfence::Code;
using podfence::Error;
using podfence::cli::Args;
using podfence::cli::parse_args;

namespace {

// The error code parse_args throws, or nullopt when it accepts argv.
std::optional<Code> refused(const std::vector<std::string>& argv) {
    try {
        parse_args(argv);
    } catch (const Error& e) {
        return e.code();
    }
    return std::nullopt;
}

} // namespace

TEST_CASE("cli: options a command takes") {
    Args a = parse_args({"inspect", "ns/pod", "--json"});
    CHECK(a.command == "inspect");
    CHECK(a.positional == std::vector<std::string>{"ns/pod"});
    CHECK(a.json);

    a = parse_args({"events", "--count", "3", "--json", "--bpffs-root", "/tmp/x"});
    CHECK(a.count == 3u);
    CHECK(a.json);
    CHECK(a.bpffs_root == "/tmp/x");

    a = parse_args({"explain", "ns/pod", "--direction", "ingress", "--peer", "10.0.0.1", "--proto", "TCP",
                    "--port", "80", "--ifname", "eth0", "--json"});
    CHECK(a.option("--direction") == "ingress");
    CHECK(a.option("--peer") == "10.0.0.1");
    CHECK(a.option("--proto") == "TCP");
    CHECK(a.option("--port") == "80");
    CHECK(a.option("--ifname") == "eth0");
    CHECK_FALSE(a.option("--count"));

    CHECK(parse_args({}).command == "help");
    CHECK(parse_args({"inspect", "--help"}).command == "help");
}

TEST_CASE("cli: an option the command does not take is an error") {
    // --json used to be accepted everywhere and ignored where there is no JSON form.
    CHECK(refused({"version", "--json"}) == Code::InvalidConfig);
    CHECK(refused({"inspect", "--count", "1"}) == Code::InvalidConfig);
    CHECK(refused({"counters", "--peer", "10.0.0.1"}) == Code::InvalidConfig);
    CHECK(refused({"events", "--direction", "ingress"}) == Code::InvalidConfig);
    CHECK(refused({"upgrade", "--count", "2"}) == Code::InvalidConfig);
    CHECK(refused({"explain", "p", "--count", "2"}) == Code::InvalidConfig);
    // Unknown options, missing values, repeats, extra arguments, bad values.
    CHECK(refused({"inspect", "--jsn"}) == Code::InvalidConfig);
    CHECK(refused({"events", "--count"}) == Code::InvalidConfig);
    CHECK(refused({"inspect", "--json", "--json"}) == Code::InvalidConfig);
    CHECK(refused({"inspect", "a", "b"}) == Code::InvalidConfig);
    CHECK(refused({"events", "--count", "0"}) == Code::InvalidConfig);
    CHECK(refused({"events", "--count", "x"}) == Code::InvalidConfig);
    CHECK(refused({"inspect", "--bpffs-root", "relative"}) == Code::InvalidConfig);
    CHECK(refused({"frobnicate"}) == Code::InvalidConfig);
    // Every command takes --bpffs-root.
    CHECK_FALSE(refused({"version", "--bpffs-root", "/sys/fs/bpf"}));
}

TEST_CASE("cli: events' timestamps are RFC 3339 with nanoseconds, UTC") {
    using podfence::cli::rfc3339_nanos;
    CHECK(rfc3339_nanos(0) == "1970-01-01T00:00:00.000000000Z");
    CHECK(rfc3339_nanos(1'796'190'377'000'000'042) == "2026-12-02T05:46:17.000000042Z");
    CHECK(rfc3339_nanos(951'782'400'999'999'999) == "2000-02-29T00:00:00.999999999Z");
}

TEST_CASE("cni: the pod identity from CNI_ARGS") {
    using podfence::cni::pod_identity;
    auto id = pod_identity({{"IgnoreUnknown", "1"},
                            {"K8S_POD_NAMESPACE", "shop"},
                            {"K8S_POD_NAME", "cart-7f9c"},
                            {"K8S_POD_INFRA_CONTAINER_ID", "abc"},
                            {"K8S_POD_UID", "0d6a1c3e-1111-2222-3333-444455556666"}});
    CHECK(id.namespace_ == "shop");
    CHECK(id.name == "cart-7f9c");
    CHECK(id.uid == "0d6a1c3e-1111-2222-3333-444455556666");
    CHECK(id.qualified() == "shop/cart-7f9c");

    // Outside Kubernetes: nothing, and no "namespace/name" to select by.
    id = pod_identity({{"IgnoreUnknown", "1"}});
    CHECK(id.qualified().empty());
    id = pod_identity({{"K8S_POD_NAME", "lonely"}});
    CHECK(id.qualified().empty());

    // A value that cannot be a Kubernetes name is dropped, never fatal: a
    // '/' would make namespace/name selectors ambiguous.
    id = pod_identity(
        {{"K8S_POD_NAMESPACE", "a/b"}, {"K8S_POD_NAME", "x\ny"}, {"K8S_POD_UID", std::string(300, 'u')}});
    CHECK(id.namespace_.empty());
    CHECK(id.name.empty());
    CHECK(id.uid.empty());
}

TEST_CASE("cli: pods are selected by namespace/name or a container ID prefix") {
    using podfence::cli::matches_pod;
    podfence::bpf::AttachmentRecord r;
    r.container_id = "4f1c2d3e5a6b";
    r.pod_namespace = "shop";
    r.pod_name = "cart";
    CHECK(matches_pod(r, "shop/cart"));
    CHECK(matches_pod(r, "4f1c"));
    CHECK(matches_pod(r, "4f1c2d3e5a6b"));
    CHECK_FALSE(matches_pod(r, "shop/car"));
    CHECK_FALSE(matches_pod(r, "cart"));
    CHECK_FALSE(matches_pod(r, "1c2d"));
    CHECK_FALSE(matches_pod(r, ""));
    CHECK(podfence::cli::pod_name(r) == "shop/cart");
    r.pod_namespace.clear();
    CHECK_FALSE(matches_pod(r, "shop/cart"));
    CHECK(podfence::cli::pod_name(r).empty());
}
