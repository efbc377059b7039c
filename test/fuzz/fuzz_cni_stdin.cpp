// libFuzzer target: the CNI plugin's stdin (netconf, prevResult, runtimeConfig
// annotations, GC's attachment list) through the functions the verbs call
// before they touch the system: parse_netconf, require_verb_version,
// plan_policy, require_prev_result, pod_sources, convert_result,
// parse_valid_attachments, and error_json for every failure. Only
// podfence::Error may come out of them (main() reports anything else as an
// I/O error, code 5), and every document the plugin would print must dump.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cni/netconf.hpp"
#include "cni/output.hpp"
#include "cni/result.hpp"
#include "cni/version.hpp"
#include "common/error.hpp"
#include "verbs/prepare.hpp"

using namespace podfence;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_cni_stdin: %s\n", what);
    std::abort();
}

// What main() prints for a failed verb; dump() throws on invalid UTF-8.
void emit_error(const std::string& version, const Error& e) {
    (void)cni::error_json(version, e).dump();
}

// ADD prints prevResult converted to the netconf's version. Each conversion
// to a supported version must read back as a valid result of that version,
// or a runtime of that version would refuse what podfence hands on.
void check_conversions(const nlohmann::json& prev, const std::string& conf_version) {
    (void)cni::convert_result(prev, conf_version).dump();
    for (std::string_view to : cni::kSupportedVersions) {
        const nlohmann::json out = cni::convert_result(prev, to);
        if (out.value("cniVersion", "") != to) fail("convert_result: cniVersion not set");
        try {
            (void)cni::parse_result(out, to);
        } catch (const Error& e) {
            std::fprintf(stderr, "to %s: %s\n", std::string(to).c_str(), e.what());
            fail("a valid prevResult converted to a supported version does not parse");
        }
    }
}

void run_verbs(const cni::NetConf& conf, const std::string& version) {
    for (cni::Verb v : {cni::Verb::Add, cni::Verb::Del, cni::Verb::Check, cni::Verb::Gc, cni::Verb::Status}) {
        try {
            verbs::require_verb_version(v, conf);
        } catch (const Error& e) {
            emit_error(version, e);
        }
    }
    try {
        const verbs::PolicyPlan plan = verbs::plan_policy(conf);
        if (plan.from_annotation != conf.policy_annotation().has_value()) fail("plan_policy: wrong source");
    } catch (const Error& e) {
        emit_error(version, e);
    }
    try {
        const cni::Result prev = verbs::require_prev_result(conf);
        for (const auto& i : prev.interfaces) {
            (void)cni::pod_sources(prev, i.name);
            (void)prev.has_host_interface(i.name);
        }
        (void)cni::pod_sources(prev, "eth0");
        check_conversions(*conf.prev_result, conf.cni_version);
    } catch (const Error& e) {
        emit_error(version, e);
    }
    try {
        (void)cni::parse_valid_attachments(conf);
    } catch (const Error& e) {
        emit_error(version, e);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // As main(): errors answer in the netconf's version when podfence speaks it.
    std::string version;
    if (std::string v = cni::sniff_cni_version(text); cni::is_supported_version(v)) version = v;
    cni::NetConf conf;
    try {
        conf = cni::parse_netconf(text);
    } catch (const Error& e) {
        emit_error(version, e);
        return 0;
    }
    if (conf.cni_version != version) fail("sniff_cni_version disagrees with parse_netconf");
    run_verbs(conf, version);
    return 0;
}
