#include "prepare.hpp"

#include <algorithm>
#include <iterator>

#include "../cni/version.hpp"
#include "../common/error.hpp"

namespace podfence::verbs {

PolicyPlan plan_policy(const cni::NetConf& conf) {
    PolicyPlan plan;
    if (auto text = conf.policy_annotation()) {
        plan.policy = policy::parse_policy(*text);
        plan.from_annotation = true;
    } else {
        plan.policy = policy::default_policy(conf.default_policy);
    }
    plan.enforcement = conf.enforcement;
    if (auto text = conf.enforcement_annotation())
        plan.enforcement = policy::parse_enforcement_annotation(*text);
    plan.entries = policy::compile(plan.policy);
    plan.canonical_json = policy::to_json(plan.policy);
    return plan;
}

void require_verb_version(cni::Verb verb, const cni::NetConf& conf) {
    const char* min = nullptr;
    switch (verb) {
    case cni::Verb::Check: min = "0.4.0"; break;
    case cni::Verb::Gc:
    case cni::Verb::Status: min = "1.1.0"; break;
    default: return;
    }
    if (cni::compare_versions(conf.cni_version, min) < 0)
        throw Error(Code::IncompatibleVersion, std::string(cni::verb_name(verb)) + " needs cniVersion >= " +
                                                   min + "; the configuration has " + conf.cni_version);
}

cni::Result require_prev_result(const cni::NetConf& conf) {
    if (!conf.prev_result)
        throw Error(Code::InvalidConfig,
                    "podfence is a chained plugin: prevResult missing (list it after a primary plugin "
                    "such as bridge or ptp)");
    return cni::parse_result(*conf.prev_result, conf.cni_version);
}

EntryDiff diff_entries(std::vector<policy::PolicyEntry> kernel, std::vector<policy::PolicyEntry> expected) {
    std::sort(kernel.begin(), kernel.end());
    std::sort(expected.begin(), expected.end());
    std::vector<policy::PolicyEntry> only;
    EntryDiff d;
    std::set_difference(expected.begin(), expected.end(), kernel.begin(), kernel.end(),
                        std::back_inserter(only));
    d.missing = only.size();
    only.clear();
    std::set_difference(kernel.begin(), kernel.end(), expected.begin(), expected.end(),
                        std::back_inserter(only));
    d.unexpected = only.size();
    return d;
}

} // namespace podfence::verbs
