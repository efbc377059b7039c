// `podfence events [pod] [--json]`: denied (and audited) packets as they happen. Turns PF_CFG_EVENTS on
// for the time it runs (RAII: off again on every exit path).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "../../bpf/podfence_abi.h"
#include "../bpf/datapath.hpp"
#include "../bpf/events.hpp"
#include "../bpf/layout.hpp"
#include "../common/error.hpp"
#include "../policy/explain.hpp"
#include "cli.hpp"
#include "records.hpp"

namespace podfence::cli {
namespace {

using json = nlohmann::ordered_json; // keys in the order written: time first for readers of the stream

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
    // Another `events` that ended cleared the node-wide flag: set it again.
    void reassert() const { bpf::set_events_flag(dp_, true); }
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

// What an event of a slot is attributed to: the record and its parsed
// policy (for the closest rule of a policy event; nullopt if unreadable).
struct PodInfo {
    bpf::AttachmentRecord record;
    std::optional<policy::Policy> policy;
};

struct Printer {
    std::map<std::uint32_t, PodInfo> pods; // slot -> pod, in this datapath
    Tally* tally = nullptr;
    bool as_json = false;
    bool filtered = false; // a pod was named: events of other slots are not shown
};

std::string addr_text(std::uint8_t family, const std::uint8_t* a) {
    char buf[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family == PF_FAMILY_V6 ? AF_INET6 : AF_INET, a, buf, sizeof buf);
    return buf;
}

std::string addr(std::uint8_t family, const std::uint8_t* a) {
    std::string s = addr_text(family, a);
    if (family != PF_FAMILY_V6) return s;
    std::string bracketed = "["; // appended: "[" + string trips a false -Wrestrict of GCC 12 at -O3
    bracketed.append(s).append("]");
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

const char* verdict_name(std::uint8_t reason) {
    switch (reason) {
    case PF_DROP_SPOOFED: return "spoofed-source"; // the pod misbehaving, not a policy decision
    case PF_EVENT_AUDIT: return "audit";           // would be denied; passed
    default: return "denied";
    }
}

std::int64_t clock_ns(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// pf_event.ts_ns is CLOCK_MONOTONIC (bpf_ktime_get_ns): shifted by the
// current distance between the two clocks.
std::int64_t wall_ns(std::uint64_t mono_ns) {
    return clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC) + static_cast<std::int64_t>(mono_ns);
}

} // namespace

std::string rfc3339_nanos(std::int64_t unix_ns) {
    std::int64_t sec = unix_ns / 1'000'000'000, ns = unix_ns % 1'000'000'000;
    if (ns < 0) {
        ns += 1'000'000'000;
        --sec;
    }
    const auto t = static_cast<time_t>(sec);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(ns));
    return buf;
}

namespace {

// The rule of a policy (or audit) event that came closest: one that failed
// in one part only. Where the event is known to come from: no rule admits it.
json rule_context(const PodInfo& pod, const pf_event& ev) {
    if (ev.reason == PF_DROP_SPOOFED || !pod.policy) return nullptr;
    policy::FlowQuery q;
    q.dir = ev.dir == PF_DIR_INGRESS ? policy::Direction::Ingress : policy::Direction::Egress;
    q.family = ev.family;
    std::memcpy(q.peer.data(), ev.dir == PF_DIR_INGRESS ? ev.src : ev.dst, q.peer.size());
    q.proto = ev.proto;
    const bool ported = ev.proto == IPPROTO_TCP || ev.proto == IPPROTO_UDP || ev.proto == IPPROTO_SCTP;
    q.port = ported ? ntohs(ev.dport) : 0;
    const auto x = policy::explain(*pod.policy, q);
    json j = {{"isolated", x.isolated},
              {"ruleMatched", x.rule ? json(policy::rule_label(q.dir, *x.rule)) : json(nullptr)}};
    if (!x.failed.empty() && (x.failed[0].peer_ok || x.failed[0].port_ok))
        j["closest"] = {{"rule", policy::rule_label(q.dir, x.failed[0].index)},
                        {"failed", x.failed[0].peer_ok ? "port" : "peer"}};
    return j;
}

void print_event(Printer* p, const pf_event& ev) {
    if (p->tally->done()) return;
    auto it = p->pods.find(ev.slot);
    if (p->filtered && it == p->pods.end()) return;
    const PodInfo* pod = it == p->pods.end() ? nullptr : &it->second;
    const char* dir = ev.dir == PF_DIR_INGRESS ? "ingress" : "egress";
    const std::string time = rfc3339_nanos(wall_ns(ev.ts_ns));
    if (p->as_json) {
        json j = {
            {"time", time}, {"verdict", verdict_name(ev.reason)}, {"direction", dir}, {"slot", ev.slot}};
        if (pod) {
            const auto& r = pod->record;
            j["pod"] = {{"namespace", r.pod_namespace}, {"name", r.pod_name}, {"uid", r.pod_uid}};
            j["containerID"] = r.container_id;
            j["ifname"] = r.ifname;
        } else {
            j["pod"] = nullptr;
        }
        j["family"] = ev.family == PF_FAMILY_V6 ? "ipv6" : "ipv4";
        j["protocol"] = proto_name(ev.proto);
        j["src"] = addr_text(ev.family, ev.src);
        j["dst"] = addr_text(ev.family, ev.dst);
        j["srcPort"] = ntohs(ev.sport);
        j["dstPort"] = ntohs(ev.dport);
        j["length"] = ev.len;
        j["rule"] = pod ? rule_context(*pod, ev) : json(nullptr);
        std::cout << j.dump() << std::endl;
    } else {
        std::string who = "unknown pod";
        if (pod) {
            const std::string name = pod_name(pod->record);
            who = (name.empty() ? "" : name + " ") + pod->record.container_id + " " + pod->record.ifname;
        }
        std::cout << verdict_name(ev.reason) << " " << dir << " slot " << ev.slot << " (" << who << ") "
                  << proto_name(ev.proto) << " " << addr(ev.family, ev.src) << ":" << ntohs(ev.sport)
                  << " -> " << addr(ev.family, ev.dst) << ":" << ntohs(ev.dport) << " len " << ev.len
                  << " at " << time << std::endl;
    }
    ++p->tally->printed;
}

// events_lost of the pods shown: what grew since the last look is reported
// (the kernel counts per slot; a full ring is shared by the whole node).
class LostWatch {
public:
    explicit LostWatch(bool as_json) : json_(as_json) {}

    // Reads the counters of `records`; reports growth unless `baseline`.
    void check(const std::vector<bpf::AttachmentRecord>& records, bool baseline) {
        std::uint64_t grew = 0;
        json pods = json::array();
        for (const auto& r : records) {
            std::uint64_t now = 0;
            try {
                now = bpf::events_lost(cache_.get(r.datapath_dir), r.slot);
            } catch (const std::exception&) {
                continue; // the pod went away between the listing and the read
            }
            const std::string key = r.container_id + "/" + r.ifname;
            auto [it, fresh] = seen_.emplace(key, baseline ? now : 0);
            const std::uint64_t before = it->second;
            it->second = now;
            if (now <= before || (fresh && baseline)) continue;
            grew += now - before;
            pods.push_back(
                {{"containerID", r.container_id},
                 {"ifname", r.ifname},
                 {"pod", {{"namespace", r.pod_namespace}, {"name", r.pod_name}, {"uid", r.pod_uid}}},
                 {"lost", now - before}});
        }
        if (grew == 0) return;
        total_ += grew;
        const std::string time = rfc3339_nanos(clock_ns(CLOCK_REALTIME));
        if (json_)
            std::cout
                << json({{"time", time}, {"lost", grew}, {"lostSinceStart", total_}, {"pods", pods}}).dump()
                << std::endl;
        else
            std::cerr << "podfence: " << grew << " events lost (ring buffer full), " << total_
                      << " since start" << std::endl;
    }

private:
    bool json_;
    DatapathCache cache_;
    std::map<std::string, std::uint64_t> seen_;
    std::uint64_t total_ = 0;
};

// Fills each datapath's printer with the pods of `records`.
void assign(std::map<std::string, Printer>& printers, const std::vector<bpf::AttachmentRecord>& records) {
    for (auto& [dir, p] : printers)
        p.pods.clear();
    for (const auto& r : records) {
        auto it = printers.find(r.datapath_dir);
        if (it == printers.end()) continue; // a datapath loaded after we started: not listened to
        PodInfo info{r, std::nullopt};
        try {
            info.policy = policy::parse_policy(r.policy_json);
        } catch (const std::exception&) {
            // shown without rule context
        }
        it->second.pods[r.slot] = std::move(info);
    }
}

} // namespace

void cmd_events(const Args& a) {
    const std::optional<std::string> selector =
        a.positional.empty() ? std::nullopt : std::optional<std::string>(a.positional[0]);
    auto records = load_records(a, selector);
    if (selector && records.empty())
        throw Error(Code::UnknownContainer, "no attachment matches \"" + *selector +
                                                "\" (see podfence inspect: a pod is namespace/name, a "
                                                "container ID or a prefix of one)");
    // Every datapath in use (older binaries' too) plus this binary's, if
    // loaded; with a pod named, only its datapaths.
    std::set<std::string> dirs;
    for (const auto& r : records)
        dirs.insert(r.datapath_dir);
    std::string current = bpf::layout::datapath_dir(a.bpffs_root, bpf::embedded_datapath_name());
    if (!selector && ::access(current.c_str(), F_OK) == 0) dirs.insert(current);
    if (dirs.empty()) throw Error(Code::Io, "no podfence datapath loaded under " + a.bpffs_root);

    Tally tally{0, a.count};
    std::map<std::string, Printer> printers;
    for (const auto& d : dirs) {
        Printer& p = printers[d];
        p.tally = &tally;
        p.as_json = a.json;
        p.filtered = selector.has_value();
    }
    assign(printers, records);

    DatapathCache cache;
    std::vector<std::unique_ptr<EventsFlag>> flags;
    bpf::EventStream stream;
    for (const auto& d : dirs) {
        Printer* p = &printers[d];
        stream.add(cache.get(d), [p](const pf_event& ev) { print_event(p, ev); });
    }
    LostWatch lost(a.json);
    lost.check(records, true);
    SignalScope signals;
    g_stop = 0;
    for (const auto& d : dirs)
        flags.push_back(std::make_unique<EventsFlag>(cache.get(d)));
    std::cerr << "podfence: printing denied" << (selector ? " (for " + *selector + ")" : std::string())
              << " packets (Ctrl-C to stop)\n";
    // Pods come and go while this runs: re-read the records (names, and the
    // pods whose lost events are watched) every second.
    auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!g_stop && !tally.done()) {
        stream.poll(200 /* ms: bounds the reaction to --count and signals */);
        if (std::chrono::steady_clock::now() < next) continue;
        next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        records = load_records(a, selector);
        assign(printers, records);
        lost.check(records, false);
        for (const auto& f : flags)
            f->reassert();
    }
    lost.check(records, false);
}

} // namespace podfence::cli
