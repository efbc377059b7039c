#include "cli.hpp"

#include <algorithm>
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
  inspect [pod] [--json]              attachments: pod, container, ifname, mode, host veth, slot, rev,
                                      enforcement, policy
  counters [pod] [--json]             allowed/denied/would-deny packets and bytes per pod and direction,
                                      rule hits, events lost
  update <pod> <ifname> [policy.json|-] [--enforcement enforce|audit]
                                      replace a live pod's policy and/or switch its enforcement, in one
                                      atomic step (same JSON as the podfence.io/policy annotation; - reads
                                      stdin)
  events [pod] [--count N] [--json]   print denied (and audited) packets as they happen until Ctrl-C
                                      (or N events); --json: one object per line; lost events reported
  explain <pod> --direction ingress|egress --peer ADDR [--proto TCP|UDP|SCTP|ICMP] [--port N]
          [--ifname IF] [--json]      the verdict a new flow would get and why, from the stored policy
                                      and from the live policy map (exit 103 if they disagree); --port
                                      alone means TCP, neither --proto nor --port a portless protocol
  upgrade [--json]                    move every pod onto this binary's datapath in place (also done by
                                      any verb); policies recompiled, established flows kept
  repair [--json]                     after the bpffs was lost or pins deleted: restore every pod's pins
                                      from the kernel and the record copies in /run/podfence
  metrics [--textfile DIR | --listen ADDR:PORT]
                                      Prometheus text format on stdout, as DIR/podfence.prom (node_exporter
                                      textfile collector), or served on /metrics (no auth: loopback/node IP)
  help                                this text

A pod is namespace/name (K8S_POD_NAMESPACE/K8S_POD_NAME at ADD) or a container ID or a
prefix of one; naming several attachments where one is needed is an error listing them.
An option a command does not take is an error.

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

// Options any command may name, and whether each takes a value.
struct OptionSpec {
    const char* name;
    bool takes_value;
};
constexpr OptionSpec kOptions[] = {
    {"--bpffs-root", true}, {"--json", false},  {"--count", true},       {"--direction", true},
    {"--peer", true},       {"--proto", true},  {"--port", true},        {"--textfile", true},
    {"--listen", true},     {"--ifname", true}, {"--enforcement", true},
};

struct Command {
    void (*run)(const Args&);
    std::size_t max_positional;
    std::vector<std::string> options; // besides --bpffs-root, which every command takes
};

const std::map<std::string, Command>& commands() {
    static const std::map<std::string, Command> table = {
        {"version", {cmd_version, 0, {}}},
        {"help", {cmd_help, 0, {}}},
        {"inspect", {cmd_inspect, 1, {"--json"}}},
        {"counters", {cmd_counters, 1, {"--json"}}},
        {"update", {cmd_update, 3, {"--enforcement"}}},
        {"events", {cmd_events, 1, {"--count", "--json"}}},
        {"upgrade", {cmd_upgrade, 0, {"--json"}}},
        {"repair", {cmd_repair, 0, {"--json"}}},
        {"explain", {cmd_explain, 1, {"--direction", "--peer", "--proto", "--port", "--ifname", "--json"}}},
        {"metrics", {cmd_metrics, 0, {"--textfile", "--listen"}}},
    };
    return table;
}

} // namespace

std::optional<std::string> Args::option(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end()) return std::nullopt;
    return it->second;
}

Args parse_args(const std::vector<std::string>& argv) {
    Args a;
    bool help = false;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string& s = argv[i];
        if (s == "-h" || s == "--help") {
            help = true;
            continue;
        }
        if (s.size() < 2 || s[0] != '-' || s == "-") {
            (a.command.empty() ? a.command : a.positional.emplace_back()) = s;
            continue;
        }
        const OptionSpec* spec = nullptr;
        for (const auto& o : kOptions)
            if (s == o.name) spec = &o;
        if (!spec) throw Error(Code::InvalidConfig, "unknown option " + s + " (see podfence help)");
        std::string value;
        if (spec->takes_value) {
            if (i + 1 >= argv.size()) throw Error(Code::InvalidConfig, s + " needs a value");
            value = argv[++i];
        }
        if (!a.options.emplace(s, value).second) throw Error(Code::InvalidConfig, s + " is given twice");
    }
    if (help || a.command.empty()) a.command = "help";
    auto cmd = commands().find(a.command);
    if (cmd == commands().end())
        throw Error(Code::InvalidConfig, "unknown command \"" + a.command + "\" (see podfence help)");
    for (const auto& [name, value] : a.options) {
        const auto& allowed = cmd->second.options;
        if (name != "--bpffs-root" && a.command != "help" &&
            std::find(allowed.begin(), allowed.end(), name) == allowed.end())
            throw Error(Code::InvalidConfig, a.command + " does not take " + name + " (see podfence help)");
    }
    if (a.positional.size() > cmd->second.max_positional)
        throw Error(Code::InvalidConfig, a.command + ": too many arguments (see podfence help)");
    if (auto root = a.option("--bpffs-root")) {
        a.bpffs_root = *root;
        if (a.bpffs_root.empty() || a.bpffs_root[0] != '/')
            throw Error(Code::InvalidConfig,
                        "--bpffs-root: \"" + a.bpffs_root + "\" must be an absolute path");
    }
    a.json = a.options.count("--json") != 0;
    if (auto n = a.option("--count")) a.count = parse_count(*n);
    return a;
}

int run(int argc, char** argv) {
    try {
        Args a = parse_args(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
        commands().at(a.command).run(a);
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
