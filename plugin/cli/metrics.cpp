// `podfence metrics [--textfile DIR] [--listen ADDR:PORT]`: the node's
// podfence state in the Prometheus text format, on stdout, as a file for
// node_exporter's textfile collector, or served on /metrics. podfence has no
// daemon: every output is read afresh from the pinned maps.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "../../bpf/podfence_abi.h"
#include "../bpf/counters.hpp"
#include "../bpf/datapath.hpp"
#include "../bpf/layout.hpp"
#include "../common/error.hpp"
#include "../common/fd.hpp"
#include "cli.hpp"
#include "prometheus.hpp"
#include "records.hpp"

namespace podfence::cli {
namespace {

using prom::Labels;
using prom::Type;

const char* dir_label(std::uint32_t d) {
    return d == PF_DIR_INGRESS ? "ingress" : "egress";
}

std::string rule_label(std::uint32_t rule) {
    if (rule == PF_RULE_DEFAULT) return "default";
    if (rule == PF_RULE_NONE) return "none";
    return std::to_string(rule);
}

Labels pod_labels(const bpf::AttachmentRecord& r) {
    return {{"namespace", r.pod_namespace},
            {"pod", r.pod_name},
            {"container_id", r.container_id},
            {"interface", r.ifname}};
}

Labels with(Labels l, std::initializer_list<std::pair<std::string, std::string>> more) {
    l.insert(l.end(), more.begin(), more.end());
    return l;
}

// ---- conntrack occupancy ----

struct MapOccupancy {
    std::uint64_t entries = 0;
    std::uint32_t max_entries = 0;
};

// Keys in a hash map. Batched (a few syscalls for 131072 entries); one key
// at a time on kernels or maps without batch lookups. Entries come and go
// while we count: the result is a snapshot's approximation, capped at
// max_entries.
std::uint64_t count_entries(int fd, const bpf_map_info& info) {
    constexpr std::uint32_t kBatch = 4096;
    const int ncpu = std::max(libbpf_num_possible_cpus(), 1);
    // Per-CPU values come as one 8-byte-aligned value per possible CPU.
    const std::size_t value_size = (info.value_size + 7) / 8 * 8 * static_cast<std::size_t>(ncpu);
    std::vector<unsigned char> keys(std::size_t{info.key_size} * kBatch), values(value_size * kBatch);
    std::vector<unsigned char> in(info.key_size), out(info.key_size);
    std::uint64_t total = 0;
    bool first = true;
    for (;;) {
        std::uint32_t n = kBatch;
        int rc = bpf_map_lookup_batch(fd, first ? nullptr : in.data(), out.data(), keys.data(), values.data(),
                                      &n, nullptr);
        int err = rc < 0 ? errno : 0;
        if (rc == 0 || err == ENOENT) total += n;
        if (rc == 0) {
            in = out;
            first = false;
            continue;
        }
        if (err == ENOENT) return std::min<std::uint64_t>(total, info.max_entries);
        if (!first) throw errno_error(Code::MapSeed, "bpf_map_lookup_batch", info.name, err);
        break; // batches unsupported (or a bucket larger than kBatch): walk the keys
    }
    total = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, out.data()) == 0 && total < info.max_entries) {
        ++total;
        in = out;
        prev = in.data();
    }
    return total;
}

// Entries and capacity of every conntrack map (pf_conntrack4 and
// pf_conntrack) behind `dirs`, each map once: datapaths of different
// binaries share them (kSharedMaps), which the kernel's map id tells.
MapOccupancy conntrack_occupancy(DatapathCache& cache, const std::vector<std::string>& dirs,
                                 std::uint64_t& errors) {
    MapOccupancy total;
    std::set<std::uint32_t> seen;
    for (const auto& dir : dirs) {
        try {
            for (bpf::Map m : {bpf::Map::Conntrack4, bpf::Map::Conntrack}) {
                int fd = cache.get(dir).map(m);
                if (fd < 0) continue;
                bpf_map_info info{};
                std::uint32_t len = sizeof(info);
                if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
                    throw errno_error(Code::MapSeed, "bpf_obj_get_info_by_fd",
                                      dir + "/" + bpf::map_info(m).name, errno);
                if (!seen.insert(info.id).second) continue;
                total.entries += count_entries(fd, info);
                total.max_entries += info.max_entries;
            }
        } catch (const std::exception& e) {
            std::cerr << "podfence metrics: conntrack of " << dir << ": " << e.what() << "\n";
            ++errors;
        }
    }
    return total;
}

// The datapath-* directories pinned on the node (tmp-* builds excluded).
std::vector<std::string> datapath_dirs(const std::string& bpffs_root) {
    std::vector<std::string> out;
    if (!bpf::has_state(bpffs_root)) return out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(bpf::layout::podfence_dir(bpffs_root), ec))
        if (bpf::layout::is_datapath_name(e.path().filename().string())) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}

// ---- the exposition ----

void declare(prom::Exposition& e) {
    e.family("podfence_packets_total", Type::Counter,
             "Packets of a pod per direction and verdict: allowed, denied (dropped by policy), would_deny "
             "(passed by an audit pod, not in allowed), spoofed (dropped for a forged source, egress only, "
             "not in denied).");
    e.family("podfence_bytes_total", Type::Counter,
             "Bytes (L2 frame length) of a pod per direction and verdict, as podfence_packets_total.");
    e.family(
        "podfence_rule_hits_total", Type::Counter,
        "New flows a pod's policy admitted, per direction and rule index; rule=\"default\": the direction "
        "is not isolated, rule=\"none\": would-deny flows of an audit pod.");
    e.family("podfence_events_lost_total", Type::Counter,
             "Drop events of a pod not written because the node's event ring buffer was full.");
    e.family("podfence_attachment_info", Type::Gauge,
             "One per attachment: its host veth, hook mode, enforcement and datapath.");
    e.family("podfence_attachments", Type::Gauge, "Attachments on the node per hook mode and enforcement.");
    e.family("podfence_conntrack_entries", Type::Gauge,
             "Entries in the node's conntrack map(s), expired ones included until reused (LRU).");
    e.family("podfence_conntrack_max_entries", Type::Gauge,
             "Capacity of the node's conntrack map(s); when full, new flows evict the least recently used.");
    e.family("podfence_datapath_info", Type::Gauge, "One per datapath pinned on the node, with its ABI.");
    e.family("podfence_build_info", Type::Gauge,
             "The podfence binary: version, datapath ABI and the datapath it loads.");
    e.family("podfence_metrics_read_errors", Type::Gauge,
             "Attachments or datapaths whose maps could not be read for this output (details on stderr).");
}

void pod_samples(prom::Exposition& e, const bpf::AttachmentRecord& r, const bpf::SlotCounters& c) {
    const Labels pod = pod_labels(r);
    std::uint64_t lost = 0;
    for (std::uint32_t d = 0; d < PF_NUM_DIRS; ++d) {
        const pf_counter& t = c[d].total;
        const Labels dir = with(pod, {{"direction", dir_label(d)}});
        const std::pair<const char*, std::pair<std::uint64_t, std::uint64_t>> verdicts[] = {
            {"allowed", {t.allowed_packets, t.allowed_bytes}},
            {"denied", {t.denied_packets, t.denied_bytes}},
            {"would_deny", {t.would_deny_packets, t.would_deny_bytes}},
            {"spoofed", {t.spoofed_packets, t.spoofed_bytes}},
        };
        for (const auto& v : verdicts) {
            e.sample("podfence_packets_total", with(dir, {{"verdict", v.first}}), v.second.first);
            e.sample("podfence_bytes_total", with(dir, {{"verdict", v.first}}), v.second.second);
        }
        for (const auto& hit : c[d].rule_hits)
            e.sample("podfence_rule_hits_total", with(dir, {{"rule", rule_label(hit.first)}}), hit.second);
        lost += t.events_lost;
    }
    e.sample("podfence_events_lost_total", pod, lost);
}

std::string collect(const Args& a) {
    prom::Exposition e;
    declare(e);
    std::uint64_t errors = 0;
    DatapathCache cache;

    // Every mode and enforcement, zero when none: series do not appear and
    // vanish as pods come and go.
    std::map<std::pair<std::string, std::string>, std::uint64_t> attachments;
    for (auto m : {bpf::AttachMode::Tcx, bpf::AttachMode::TcLegacy, bpf::AttachMode::XdpNative,
                   bpf::AttachMode::XdpGeneric})
        for (const char* enf : {"enforce", "audit"})
            attachments[{std::string(bpf::to_string(m)), enf}] = 0;

    for (const auto& r : load_records(a, std::nullopt)) {
        ++attachments[{std::string(bpf::to_string(r.mode)), r.enforcement}];
        e.sample(
            "podfence_attachment_info",
            with(pod_labels(r), {{"host_interface", r.host_ifname},
                                 {"mode", std::string(bpf::to_string(r.mode))},
                                 {"enforcement", r.enforcement},
                                 {"datapath", std::filesystem::path(r.datapath_dir).filename().string()}}),
            1);
        bpf::SlotCounters c;
        try {
            c = bpf::read_counters(cache.get(r.datapath_dir), r.slot);
        } catch (const std::exception& ex) {
            // A DEL racing this read removes the record and its datapath pins.
            std::cerr << "podfence metrics: counters of " << r.container_id << " " << r.ifname << ": "
                      << ex.what() << "\n";
            ++errors;
            continue;
        }
        pod_samples(e, r, c);
    }
    for (const auto& [key, n] : attachments)
        e.sample("podfence_attachments", {{"mode", key.first}, {"enforcement", key.second}}, n);

    const auto dirs = datapath_dirs(a.bpffs_root);
    for (const auto& dir : dirs)
        e.sample("podfence_datapath_info",
                 {{"name", std::filesystem::path(dir).filename().string()},
                  {"abi", std::to_string(bpf::datapath_abi(dir))}},
                 1);
    const MapOccupancy ct = conntrack_occupancy(cache, dirs, errors);
    e.sample("podfence_conntrack_entries", {}, ct.entries);
    e.sample("podfence_conntrack_max_entries", {}, ct.max_entries);
    e.sample("podfence_build_info",
             {{"version", PODFENCE_VERSION},
              {"abi", std::to_string(PF_ABI_VERSION)},
              {"datapath", bpf::embedded_datapath_name()}},
             1);
    e.sample("podfence_metrics_read_errors", {}, errors);
    return e.text();
}

// ---- --textfile ----

void write_all(int fd, std::string_view data, const std::string& what) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw errno_error(Code::Io, "write", what, errno);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

// DIR/podfence.prom replaced in one rename: the collector never reads half a
// file. The temporary name does not end in .prom, which the collector skips.
void write_textfile(const std::string& dir, const std::string& text) {
    const std::string final_path = dir + "/podfence.prom";
    const std::string tmp = dir + "/.podfence.prom." + std::to_string(::getpid());
    try {
        UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!fd)
            throw errno_error(Code::Io, "open", tmp, errno,
                              "--textfile DIR must be an existing, writable directory");
        // node_exporter runs as its own user: readable whatever our umask.
        if (::fchmod(fd.get(), 0644) != 0) throw errno_error(Code::Io, "fchmod", tmp, errno);
        write_all(fd.get(), text, tmp);
        if (::fsync(fd.get()) != 0) throw errno_error(Code::Io, "fsync", tmp, errno);
        if (::rename(tmp.c_str(), final_path.c_str()) != 0) throw errno_error(Code::Io, "rename", tmp, errno);
    } catch (...) {
        (void)::unlink(tmp.c_str()); // best effort: the error being thrown is what matters
        throw;
    }
}

// ---- --listen ----

// "ADDR:PORT" or "[V6ADDR]:PORT".
std::pair<std::string, std::string> split_listen(const std::string& s) {
    std::string host, port;
    if (s.starts_with("[")) {
        auto end = s.find("]:");
        if (end != std::string::npos) host = s.substr(1, end - 1), port = s.substr(end + 2);
    } else if (auto colon = s.find(':'); colon != std::string::npos && colon == s.rfind(':')) {
        host = s.substr(0, colon), port = s.substr(colon + 1); // one colon: a bare IPv6 address is ambiguous
    }
    if (host.empty() || port.empty())
        throw Error(Code::InvalidConfig, "--listen \"" + s + "\": want ADDR:PORT (IPv6: [ADDR]:PORT)");
    return {host, port};
}

std::string sockaddr_text(const sockaddr* sa, socklen_t len) {
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (::getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    return std::string(sa->sa_family == AF_INET6 ? "[" : "") + host + (sa->sa_family == AF_INET6 ? "]" : "") +
           ":" + serv;
}

UniqueFd listen_on(const std::string& spec, std::string& bound) {
    auto [host, port] = split_listen(spec);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
        throw Error(Code::InvalidConfig, "--listen " + spec + ": " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(res, ::freeaddrinfo);
    UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw errno_error(Code::Io, "socket", spec, errno);
    int one = 1;
    // A restart may rebind while the last scrape's connection is in TIME_WAIT;
    // without it, bind() reports the real problem anyway.
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0)
        throw errno_error(Code::Io, "bind", spec, errno);
    if (::listen(fd.get(), 16) != 0) throw errno_error(Code::Io, "listen", spec, errno);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    bound = ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0
                ? sockaddr_text(reinterpret_cast<sockaddr*>(&ss), len)
                : spec;
    return fd;
}

// SIGINT and SIGTERM delivered through a signalfd while the object lives
// (blocked, then the old mask restored), so poll() sees them.
class SignalFd {
public:
    SignalFd() {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        ::sigprocmask(SIG_BLOCK, &set, &old_);
        fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!fd_) {
            int err = errno;
            ::sigprocmask(SIG_SETMASK, &old_, nullptr);
            throw errno_error(Code::Io, "signalfd", "SIGINT/SIGTERM", err);
        }
    }
    ~SignalFd() {
        fd_.reset();
        ::sigprocmask(SIG_SETMASK, &old_, nullptr);
    }
    SignalFd(const SignalFd&) = delete;
    SignalFd& operator=(const SignalFd&) = delete;
    int get() const { return fd_.get(); }

private:
    sigset_t old_{};
    UniqueFd fd_;
};

using Clock = std::chrono::steady_clock;
// One client may hold the (single-threaded) server this long at most.
constexpr std::chrono::milliseconds kClientTimeout{5000};

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::max<long long>(left, 0));
}

// The request head (up to the blank line), or what came before the
// deadline, EOF or 8 KiB.
std::string read_head(int fd, Clock::time_point deadline) {
    std::string head;
    char buf[2048];
    while (head.size() < 8192 && head.find("\r\n\r\n") == std::string::npos &&
           head.find("\n\n") == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
    }
    return head;
}

void send_all(int fd, std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return; // slow or gone: give up on this client
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::string response(int status, const char* reason, const std::string& type, const std::string& body,
                     bool head_only) {
    return "HTTP/1.0 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
           (head_only ? std::string() : body);
}

void serve_client(int fd, const Args& a) {
    const auto deadline = Clock::now() + kClientTimeout;
    const std::string head = read_head(fd, deadline);
    const std::string line = head.substr(0, head.find_first_of("\r\n"));
    const auto sp1 = line.find(' ');
    const auto sp2 = line.find(' ', sp1 == std::string::npos ? sp1 : sp1 + 1);
    const std::string method = line.substr(0, sp1);
    std::string path = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    const bool head_only = method == "HEAD";
    const std::string plain = "text/plain; charset=utf-8";
    std::string out;
    if (sp1 == std::string::npos || sp2 == std::string::npos)
        out = response(400, "Bad Request", plain, "bad request\n", false);
    else if (method != "GET" && !head_only)
        out = response(405, "Method Not Allowed", plain, "only GET\n", false);
    else if (path != "/metrics")
        out = response(404, "Not Found", plain, "podfence serves /metrics only\n", head_only);
    else {
        try {
            out = response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", collect(a), head_only);
        } catch (const std::exception& e) {
            std::cerr << "podfence metrics: " << e.what() << "\n";
            out = response(500, "Internal Server Error", plain, std::string(e.what()) + "\n", head_only);
        }
    }
    send_all(fd, out, deadline);
    ::shutdown(fd, SHUT_WR);
}

void serve(const Args& a, const std::string& spec) {
    SignalFd signals;
    std::string bound;
    UniqueFd server = listen_on(spec, bound);
    // No authentication: bind to loopback or a node-local address only.
    std::cerr << "podfence metrics: serving http://" << bound << "/metrics (no authentication), Ctrl-C stops"
              << std::endl;
    for (;;) {
        pollfd p[2] = {{signals.get(), POLLIN, 0}, {server.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw errno_error(Code::Io, "poll", bound, errno);
        }
        if (p[0].revents != 0) {
            // Consumed here: left pending, it would kill us once the mask is restored.
            signalfd_siginfo info{};
            if (::read(signals.get(), &info, sizeof(info)) > 0) break;
            continue;
        }
        if ((p[1].revents & POLLIN) == 0) continue;
        UniqueFd client(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!client) {
            // Out of fds: the pending connection keeps the socket readable, so
            // wait instead of spinning; other errors are the client's alone.
            if (errno == EMFILE || errno == ENFILE) (void)::poll(nullptr, 0, 100);
            continue;
        }
        serve_client(client.get(), a);
    }
    std::cerr << "podfence metrics: stopped\n";
}

} // namespace

void cmd_metrics(const Args& a) {
    auto textfile = a.option("--textfile");
    auto listen = a.option("--listen");
    if (textfile && listen)
        throw Error(Code::InvalidConfig, "metrics: --textfile and --listen exclude each other");
    if (listen) return serve(a, *listen);
    const std::string text = collect(a);
    if (textfile)
        write_textfile(*textfile, text);
    else
        std::cout << text << std::flush;
}

} // namespace podfence::cli
