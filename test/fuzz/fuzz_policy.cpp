// libFuzzer target: the podfence.io/policy annotation through parse_policy
// and compile, held to the reference evaluator (policy_diff.hpp). Input: the
// annotation text, optionally followed by a NUL byte and bytes that pick
// more probe packets.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "common/error.hpp"
#include "policy_diff.hpp"

using namespace podfence;
using namespace podfence::policy;

namespace {

// Compiled policies past this many entries are not probed: keeps one input
// well below 100 ms (the compile itself is bounded by -max_len).
constexpr std::size_t kMaxCheckedEntries = 20000;
// The capacity check compiles a second time: only for small policies, which
// reach the counting path just as well.
constexpr std::size_t kMaxCapacityChecked = 1000;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view all(reinterpret_cast<const char*>(data), size);
    const std::size_t nul = all.find('\0');
    const std::string_view text = all.substr(0, nul);
    const std::string_view rest = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);

    Policy pol;
    try {
        pol = parse_policy(text);
    } catch (const Error& e) {
        if (e.code() != Code::InvalidPolicy) pf_fuzz::fail("parse_policy: error code is not InvalidPolicy");
        return 0;
    }
    // What inspect and the attachment record show must read back the same.
    if (parse_policy(to_json(pol)) != pol) pf_fuzz::fail("to_json does not read back as the same policy");
    (void)summary(pol);

    std::vector<PolicyEntry> entries;
    try {
        entries = compile(pol);
    } catch (const Error& e) {
        if (e.code() != Code::InvalidPolicy) pf_fuzz::fail("compile: error code is not InvalidPolicy");
        return 0;
    }
    if (entries.size() > kMaxCheckedEntries) return 0;
    pf_fuzz::check_entries(entries);
    // The capacity check: one entry less than needed must be refused (a
    // policy that denies everything needs none).
    if (!entries.empty() && entries.size() <= kMaxCapacityChecked) {
        try {
            (void)compile(pol, entries.size() - 1);
            pf_fuzz::fail("compile accepted a capacity below the entries it needs");
        } catch (const Error& e) {
            if (e.code() != Code::InvalidPolicy) pf_fuzz::fail("compile: error code is not InvalidPolicy");
        }
    }

    FuzzedDataProvider fdp(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size());
    pf_fuzz::check_decisions(pol, entries, fdp);
    return 0;
}
