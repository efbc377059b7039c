// Bugs the libFuzzer targets (test/fuzz) found, one case each, so they stay
// fixed in the ordinary unit run.
#include <doctest/doctest.h>

#include <string>

#include "cli/policy_input.hpp"
#include "cni/netconf.hpp"
#include "cni/output.hpp"
#include "common/error.hpp"
#include "policy/policy.hpp"
#include "verbs/prepare.hpp"

using namespace podfence;
using nlohmann::json;

namespace {

Code code_of(auto&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    return Code{0};
}

// The netconf ADD gets from the runtime, with `policy` as the pod's annotation.
std::string netconf_with_annotation(const std::string& policy) {
    return json{{"cniVersion", "1.0.0"},
                {"name", "net"},
                {"type", "podfence"},
                {"prevResult", {{"cniVersion", "1.0.0"}}},
                {"runtimeConfig", {{"io.kubernetes.cri.pod-annotations", {{"podfence.io/policy", policy}}}}}}
        .dump();
}

} // namespace

// fuzz_policy: nlohmann throws out_of_range (not parse_error) for a number
// beyond a double; parse_policy let it through, so ADD failed with code 5
// (I/O) and a bare library message instead of 104 naming the annotation,
// and `podfence update` exited 5.
TEST_CASE("fuzz: a number too large for a double is a malformed policy (104)") {
    const std::string text = R"({"ingress": [{"ports": [{"port": 1e999}]}]})";
    CHECK(code_of([&] { policy::parse_policy(text); }) == Code::InvalidPolicy);
    CHECK(code_of([&] { cli::parse_policy_input(text); }) == Code::InvalidPolicy);
    try {
        policy::parse_policy(text);
    } catch (const Error& e) {
        CHECK(std::string(e.what()).starts_with("podfence.io/policy: not valid JSON: "));
    }
    const cni::NetConf conf = cni::parse_netconf(netconf_with_annotation(text));
    CHECK(code_of([&] { verbs::plan_policy(conf); }) == Code::InvalidPolicy);
}

// fuzz_cni_stdin: an annotation that is not JSON, broken right after a
// non-ASCII character, gave a parse error quoting half of that character
// ("last read: '... tru\xc3'"). error_json() kept the bytes and main()'s
// dump() threw type_error 316 inside its catch block: podfence aborted
// (SIGABRT) without printing an error for the runtime.
TEST_CASE("fuzz: an error message with invalid UTF-8 still dumps as the spec's error JSON") {
    const cni::NetConf conf = cni::parse_netconf(netconf_with_annotation("{\"ingress\": tru\u00e9}"));
    Error err(Code::Io, "");
    try {
        verbs::plan_policy(conf);
        FAIL("plan_policy accepted a policy that is not JSON");
    } catch (const Error& e) {
        err = e;
    }
    CHECK(err.code() == Code::InvalidPolicy);
    std::string out;
    REQUIRE_NOTHROW(out = cni::error_json(conf.cni_version, err).dump());
    const json back = json::parse(out);
    CHECK(back["code"] == 104);
    CHECK(back["msg"].get<std::string>().starts_with("podfence.io/policy: not valid JSON: "));

    // Any message: invalid bytes become U+FFFD, the rest is kept.
    const json j = cni::error_json("1.1.0", Error(Code::InvalidEnv, "CNI_IFNAME \"a\xff\xc3\"", "x\x80y"));
    REQUIRE_NOTHROW(out = j.dump());
    CHECK(j["msg"] == "CNI_IFNAME \"a\xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK(j["details"] == "x\xef\xbf\xbdy");
}
