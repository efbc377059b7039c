// The operator CLI (no CNI_COMMAND): podfence <command> [args] [--bpffs-root DIR].
// Output on stdout; errors on stderr with exit status 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace podfence::cli {

struct Args {
    std::string command; // "help" when none given
    std::vector<std::string> positional;
    std::string bpffs_root = "/sys/fs/bpf";
    bool json = false;
    std::optional<std::uint64_t> count; // events --count N
};

// Throws Error(InvalidConfig) naming the bad option.
Args parse_args(const std::vector<std::string>& argv);

int run(int argc, char** argv);

// Commands (each throws podfence::Error on failure).
void cmd_inspect(const Args& a);
void cmd_counters(const Args& a);
void cmd_update(const Args& a);
void cmd_events(const Args& a);
void cmd_upgrade(const Args& a);
void cmd_repair(const Args& a);

} // namespace podfence::cli
