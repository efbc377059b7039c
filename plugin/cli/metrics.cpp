// `podfence metrics [--textfile DIR] [--listen ADDR:PORT]`.
#include "../common/error.hpp"
#include "cli.hpp"

namespace podfence::cli {

void cmd_metrics(const Args&) {
    throw Error(Code::InvalidConfig, "metrics: not available yet");
}

} // namespace podfence::cli
