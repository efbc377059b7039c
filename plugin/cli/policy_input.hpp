// The policy `podfence update` installs: read from a file or stdin, parsed
// and compiled before any lock is taken or the kernel is touched. Apart from
// reading, pure logic, so the fuzz target test/fuzz/fuzz_update_input.cpp
// drives exactly what the CLI runs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "../policy/compile.hpp"
#include "../policy/policy.hpp"

namespace podfence::cli {

struct PolicyInput {
    policy::Policy policy;
    std::vector<policy::PolicyEntry> entries; // policy::compile(policy)
};

// The whole content of `src`, a path or "-" for stdin. Throws Error(Io)
// when the file cannot be opened.
std::string read_policy_source(const std::string& src);

// The same JSON as the podfence.io/policy annotation. Throws
// Error(InvalidPolicy) naming the field, or when the compiled policy exceeds
// the per-pod capacity.
PolicyInput parse_policy_input(std::string_view text);

} // namespace podfence::cli
