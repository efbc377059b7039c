// The "parse and validate everything first" half of the verbs: pure logic,
// no system access, so it is unit tested without a kernel.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "../cni/env.hpp"
#include "../cni/netconf.hpp"
#include "../cni/result.hpp"
#include "../policy/compile.hpp"
#include "../policy/policy.hpp"

namespace podfence::verbs {

struct PolicyPlan {
    policy::Policy policy;
    std::vector<policy::PolicyEntry> entries; // compile(policy)
    std::string canonical_json;               // policy::to_json(policy)
    bool from_annotation = false;             // false => netconf defaultPolicy
    policy::Enforcement enforcement = policy::Enforcement::Enforce;
};

// The pod's policy: the podfence.io/policy annotation if the runtime passed
// one, else the netconf's defaultPolicy. Parses and compiles (throws
// Error(InvalidPolicy) naming the field). Its enforcement: the
// podfence.io/enforcement annotation, else the netconf's `enforcement`
// (a malformed annotation throws Error(InvalidPolicy) too).
PolicyPlan plan_policy(const cni::NetConf& conf);

// Spec: CHECK exists from 0.4.0, GC and STATUS from 1.1.0. Throws
// Error(IncompatibleVersion) otherwise.
void require_verb_version(cni::Verb verb, const cni::NetConf& conf);

// ADD and CHECK need the primary plugin's result. Throws Error(InvalidConfig)
// when absent, or naming the malformed field.
cni::Result require_prev_result(const cni::NetConf& conf);

// Where the whole entries set of the kernel differs from the expected one.
struct EntryDiff {
    std::size_t missing = 0;    // expected but not in the kernel
    std::size_t unexpected = 0; // in the kernel but not expected
    bool empty() const { return missing == 0 && unexpected == 0; }
};
EntryDiff diff_entries(std::vector<policy::PolicyEntry> kernel, std::vector<policy::PolicyEntry> expected);

} // namespace podfence::verbs
