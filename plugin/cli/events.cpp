// `podfence events`: denied packets as they happen. Turns PF_CFG_EVENTS on
// for the time it runs (RAII: off again on every exit path).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "../../bpf/podfence_abi.h"
#include "../bpf/datapath.hpp"
#include "../bpf/events.hpp"
#include "../bpf/layout.hpp"
#include "../common/error.hpp"
#include "cli.hpp"
#include "records.hpp"

namespace podfence::cli {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
    g_stop = 1;
}

// Installs SIGINT/SIGTERM handlers for the scope (so the flag gets cleared).
class SignalScope {
public:
    SignalScope() {
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, &old_int_);
        ::sigaction(SIGTERM, &sa, &old_term_);
    }
    ~SignalScope() {
        ::sigaction(SIGINT, &old_int_, nullptr);
        ::sigaction(SIGTERM, &old_term_, nullptr);
    }
    SignalScope(const SignalScope&) = delete;
    SignalScope& operator=(const SignalScope&) = delete;

private:
    struct sigaction old_int_ {
    }, old_term_{};
};

// PF_CFG_EVENTS set for the lifetime of the object.
class EventsFlag {
public:
    explicit EventsFlag(const bpf::Datapath& dp) : dp_(dp) { bpf::set_events_flag(dp_, true); }
    ~EventsFlag() {
        try {
            bpf::set_events_flag(dp_, false);
        } catch (const std::exception& e) {
            std::cerr << "podfence: could not clear the events flag: " << e.what() << "\n";
        }
    }
    EventsFlag(const EventsFlag&) = delete;
    EventsFlag& operator=(const EventsFlag&) = delete;

private:
    const bpf::Datapath& dp_;
};

struct Tally {
    std::uint64_t printed = 0;
    std::optional<std::uint64_t> limit; // --count
    bool done() const { return limit && printed >= *limit; }
};

struct Printer {
    std::map<std::uint32_t, std::string> names; // slot -> "container ifname" in this datapath
    Tally* tally = nullptr;
};

std::string addr(std::uint8_t family, const std::uint8_t* a) {
    char buf[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family == PF_FAMILY_V6 ? AF_INET6 : AF_INET, a, buf, sizeof buf);
    if (family != PF_FAMILY_V6) return buf;
    std::string bracketed = "["; // appended: "[" + string trips a false -Wrestrict of GCC 12 at -O3
    bracketed.append(buf).append("]");
    return bracketed;
}

std::string proto_name(std::uint8_t p) {
    switch (p) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_SCTP: return "sctp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    default: return "proto " + std::to_string(p);
    }
}

void print_event(Printer* p, const pf_event& ev) {
    if (p->tally->done()) return;
    auto name = p->names.find(ev.slot);
    // A forged source is not a policy decision: say so, it is the pod misbehaving.
    std::cout << (ev.reason == PF_DROP_SPOOFED ? "spoofed-source " : "denied ")
              << (ev.dir == PF_DIR_INGRESS ? "ingress" : "egress") << " slot " << ev.slot << " ("
              << (name == p->names.end() ? "unknown pod" : name->second) << ") " << proto_name(ev.proto)
              << " " << addr(ev.family, ev.src) << ":" << ntohs(ev.sport) << " -> " << addr(ev.family, ev.dst)
              << ":" << ntohs(ev.dport) << " len " << ev.len << std::endl;
    ++p->tally->printed;
}

} // namespace

void cmd_events(const Args& a) {
    auto records = load_records(a, std::nullopt);
    // Every datapath in use (older binaries' too) plus this binary's, if loaded.
    std::set<std::string> dirs;
    for (const auto& r : records)
        dirs.insert(r.datapath_dir);
    std::string current = bpf::layout::datapath_dir(a.bpffs_root, bpf::embedded_datapath_name());
    if (::access(current.c_str(), F_OK) == 0) dirs.insert(current);
    if (dirs.empty()) throw Error(Code::Io, "no podfence datapath loaded under " + a.bpffs_root);

    Tally tally{0, a.count};
    std::map<std::string, Printer> printers;
    for (const auto& d : dirs)
        printers[d].tally = &tally;
    for (const auto& r : records)
        printers[r.datapath_dir].names[r.slot] = r.container_id + " " + r.ifname;

    DatapathCache cache;
    std::vector<std::unique_ptr<EventsFlag>> flags;
    bpf::EventStream stream;
    for (const auto& d : dirs) {
        Printer* p = &printers[d];
        stream.add(cache.get(d), [p](const pf_event& ev) { print_event(p, ev); });
    }
    SignalScope signals;
    g_stop = 0;
    for (const auto& d : dirs)
        flags.push_back(std::make_unique<EventsFlag>(cache.get(d)));
    std::cerr << "podfence: printing denied packets (Ctrl-C to stop)\n";
    while (!g_stop && !tally.done())
        stream.poll(200 /* ms: bounds the reaction to --count and signals */);
}

} // namespace podfence::cli
