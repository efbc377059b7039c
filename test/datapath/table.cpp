#include "datapath/table.hpp"

#include <sstream>

#include "policy/policy.hpp"

namespace pftest {

namespace {

std::string verdict(bool allow) {
    return allow ? "allow" : "deny";
}

void run_steps(Harness& h, Prog p, const Case& c, const std::vector<Step>& steps, std::uint32_t slot,
               const char* phase, std::vector<std::string>& errors) {
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const Step& s = steps[i];
        const auto bytes = build(s.frame);
        // The kernel's tc test_run refuses (EINVAL) frames shorter than
        // Ethernet + the base IP header, so truncated IP headers are XDP only.
        if (p == Prog::Tc && bytes.size() < 14u + (s.frame.family == 4 ? 20u : 40u)) continue;
        h.set_scratch(slot, s.dir);
        int rc = h.run(p, bytes).retval;
        bool got = rc == Harness::allow_code(p);
        if (!got && rc != Harness::deny_code(p)) {
            errors.push_back(std::string(prog_name(p)) + " " + c.description + ": unexpected return code " +
                             std::to_string(rc));
            continue;
        }
        if (got != s.allow) {
            std::ostringstream o;
            o << prog_name(p) << " " << c.description << ": " << phase << " step " << i << " ("
              << (s.dir == kIn ? "ingress" : "egress") << " " << s.frame.describe() << "): expected "
              << verdict(s.allow) << ", got " << verdict(got);
            errors.push_back(o.str());
        }
    }
}

} // namespace

std::vector<std::string> run_cases(Harness& h, const std::vector<Case>& cases, std::uint32_t slot) {
    using podfence::policy::parse_policy;
    std::vector<std::string> errors;
    std::uint32_t rev = 100;
    for (Prog p : {Prog::Tc, Prog::Xdp}) {
        for (const Case& c : cases) {
            try {
                h.conntrack_clear();
                h.frag_clear();
                h.install(slot, parse_policy(c.policy), ++rev);
                run_steps(h, p, c, c.steps, slot, "before", errors);
                if (!c.replaced_by.empty()) {
                    h.install(slot, parse_policy(c.replaced_by), ++rev);
                    run_steps(h, p, c, c.after, slot, "after replace", errors);
                }
            } catch (const std::exception& e) {
                errors.push_back(std::string(prog_name(p)) + " " + c.description + ": " + e.what());
            }
        }
    }
    return errors;
}

} // namespace pftest
