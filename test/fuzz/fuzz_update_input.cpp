// libFuzzer target: the policy file (or stdin) of `podfence update`, through
// the function the CLI calls before it takes the lock (parse_policy_input),
// with the same differential check as fuzz_policy on what it would install.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cli/policy_input.hpp"
#include "common/error.hpp"
#include "policy_diff.hpp"

using namespace podfence;

namespace {

constexpr std::size_t kMaxCheckedEntries = 20000;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    cli::PolicyInput in;
    try {
        in = cli::parse_policy_input(text);
    } catch (const Error& e) {
        // cli::run() exits with the code: a bad file is a bad policy.
        if (e.code() != Code::InvalidPolicy)
            pf_fuzz::fail("parse_policy_input: error code is not InvalidPolicy");
        return 0;
    }
    if (in.entries.size() > kMaxCheckedEntries) return 0;
    pf_fuzz::check_entries(in.entries);
    // Probes from the policy's own blocks and ports, then from the text.
    FuzzedDataProvider fdp(data, size);
    pf_fuzz::check_decisions(in.policy, in.entries, fdp);
    return 0;
}
