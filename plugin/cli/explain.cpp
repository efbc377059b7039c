// `podfence explain <pod> --direction D --peer ADDR [--proto P] [--port N]`.
#include "../common/error.hpp"
#include "cli.hpp"

namespace podfence::cli {

void cmd_explain(const Args&) {
    throw Error(Code::InvalidConfig, "explain: not available yet");
}

} // namespace podfence::cli
