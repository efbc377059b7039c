// The operator CLI (no CNI_COMMAND): podfence <command> [args] [--bpffs-root DIR].
// Output on stdout; errors on stderr with exit status 1.
#pragma once

#include <cstdint>
#include <map>
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
    // Every other option given, "--name" -> value ("" for a flag). Which
    // options a command takes is in cli.cpp's command table.
    std::map<std::string, std::string> options;
    std::optional<std::string> option(const std::string& name) const;
};

// Throws Error(InvalidConfig) naming the bad option: unknown, missing its
// value, or not one the command takes.
Args parse_args(const std::vector<std::string>& argv);

int run(int argc, char** argv);

// Commands (each throws podfence::Error on failure).
void cmd_inspect(const Args& a);
void cmd_counters(const Args& a);
void cmd_update(const Args& a);
void cmd_events(const Args& a);
void cmd_upgrade(const Args& a);
void cmd_repair(const Args& a);
void cmd_explain(const Args& a);
void cmd_metrics(const Args& a);

} // namespace podfence::cli
