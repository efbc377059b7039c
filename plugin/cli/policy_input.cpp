#include "policy_input.hpp"

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "../common/error.hpp"

namespace podfence::cli {

std::string read_policy_source(const std::string& src) {
    if (src == "-") return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    std::ifstream in(src);
    if (!in) throw Error(Code::Io, "cannot open policy file " + src);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

PolicyInput parse_policy_input(std::string_view text) {
    PolicyInput in;
    in.policy = policy::parse_policy(text);
    in.entries = policy::compile(in.policy);
    return in;
}

} // namespace podfence::cli
