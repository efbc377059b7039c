#include "cli.hpp"

#include <charconv>
#include <iostream>
#include <map>

#include "../../bpf/podfence_abi.h"
#include "../bpf/datapath.hpp"
#include "../cni/version.hpp"
#include "../common/error.hpp"

namespace podfence::cli {
namespace {

constexpr const char* kUsage = R"(usage: podfence <command> [arguments] [--bpffs-root DIR]

Without CNI_COMMAND in the environment podfence is this operator CLI; with it,
a chained CNI plugin (spec 1.1.0).

commands:
  version                             build, CNI and datapath versions
  inspect [containerID] [--json]      attachments: container, ifname, mode, host veth, slot, rev, policy
  counters [containerID] [--json]     allowed/denied packets and bytes per pod and direction, rule hits
  update <containerID> <ifname> <policy.json|->
                                      replace a live pod's policy atomically (same JSON as the
                                      podfence.io/policy annotation; - reads stdin)
  events [--count N]                  print denied packets as they happen until Ctrl-C (or N events)
  upgrade [--json]                    move every pod onto this binary's datapath in place (also done by
                                      any verb); policies recompiled, established flows kept
  repair [--json]                     after the bpffs was lost or pins deleted: restore every pod's pins
                                      from the kernel and the record copies in /run/podfence
  help                                this text

--bpffs-root DIR   the netconf's bpffsRoot (default /sys/fs/bpf)
)";

void cmd_version(const Args&) {
    std::cout << "podfence " << PODFENCE_VERSION << "\n"
              << "cni spec " << cni::kSpecVersion << " (supports " << cni::supported_versions_list() << ")\n"
              << "datapath " << bpf::embedded_datapath_name() << " (ABI " << PF_ABI_VERSION << ")\n";
}

void cmd_help(const Args&) {
    std::cout << kUsage;
}

std::uint64_t parse_count(const std::string& s) {
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size() || n == 0)
        throw Error(Code::InvalidConfig, "--count: \"" + s + "\" is not a positive integer");
    return n;
}

} // namespace

Args parse_args(const std::vector<std::string>& argv) {
    Args a;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string& s = argv[i];
        auto value = [&](const char* opt) -> const std::string& {
            if (i + 1 >= argv.size()) throw Error(Code::InvalidConfig, std::string(opt) + " needs a value");
            return argv[++i];
        };
        if (s == "--bpffs-root") {
            a.bpffs_root = value("--bpffs-root");
            if (a.bpffs_root.empty() || a.bpffs_root[0] != '/')
                throw Error(Code::InvalidConfig,
                            "--bpffs-root: \"" + a.bpffs_root + "\" must be an absolute path");
        } else if (s == "--json") {
            a.json = true;
        } else if (s == "--count") {
            a.count = parse_count(value("--count"));
        } else if (s == "-h" || s == "--help") {
            a.command = "help";
        } else if (s.size() > 1 && s[0] == '-' && s != "-") {
            throw Error(Code::InvalidConfig, "unknown option " + s + " (see podfence help)");
        } else if (a.command.empty()) {
            a.command = s;
        } else {
            a.positional.push_back(s);
        }
    }
    if (a.command.empty()) a.command = "help";
    return a;
}

int run(int argc, char** argv) {
    using Command = void (*)(const Args&);
    static const std::map<std::string, std::pair<Command, std::size_t>> commands = {
        // name -> handler, max positional arguments
        {"version", {cmd_version, 0}},   {"help", {cmd_help, 0}},     {"inspect", {cmd_inspect, 1}},
        {"counters", {cmd_counters, 1}}, {"update", {cmd_update, 3}}, {"events", {cmd_events, 0}},
        {"upgrade", {cmd_upgrade, 0}},   {"repair", {cmd_repair, 0}},
    };
    try {
        Args a = parse_args(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
        auto it = commands.find(a.command);
        if (it == commands.end())
            throw Error(Code::InvalidConfig, "unknown command \"" + a.command + "\" (see podfence help)");
        if (a.positional.size() > it->second.second)
            throw Error(Code::InvalidConfig, a.command + ": too many arguments (see podfence help)");
        it->second.first(a);
        return 0;
    } catch (const Error& e) {
        // Exit status = the error code (README "Error codes"), as for the verbs.
        std::cerr << "podfence: " << e.what() << "\n";
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cerr << "podfence: " << e.what() << "\n";
        return static_cast<int>(Code::Io);
    }
}

} // namespace podfence::cli
