// Loading the embedded BPF object once per node and reusing its pins.
#include "datapath.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "bpf/podfence_abi.h"
#include "common/error.hpp"
#include "common/log.hpp"
#include "libbpf_log.hpp"
#include "object.hpp"
#include "util.hpp"

namespace podfence::bpf {

namespace {

bool has_all_pins(const std::string& dir) {
    for (std::size_t i = 0; i < kMaps.size(); ++i)
        if (!detail::exists(layout::map_pin(dir, static_cast<Map>(i)))) return false;
    return detail::exists(layout::tc_prog_pin(dir)) && detail::exists(layout::xdp_prog_pin(dir));
}

UniqueFd get_pin(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) throw errno_error(Code::Io, "bpf_obj_get", path, errno, "datapath incomplete?");
    return UniqueFd(fd);
}

void pin_fd(int fd, const std::string& path) {
    if (bpf_obj_pin(fd, path.c_str()) != 0) throw errno_error(Code::Io, "bpf_obj_pin", path, errno);
}

void set_engine(const EmbeddedObject& obj, Map map, int prog_fd) {
    std::uint32_t key = 0;
    auto value = static_cast<std::uint32_t>(prog_fd);
    if (bpf_map_update_elem(obj.map_fd(map), &key, &value, BPF_ANY) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_update_elem", std::string(map_info(map).name) + "[0]",
                          errno);
}

// Loads the embedded object and pins everything into `tmp` (which must not exist).
void load_and_pin(const std::string& tmp, std::span<const std::pair<Map, int>> share) {
    detail::LibbpfCapture capture;
    EmbeddedObject obj = EmbeddedObject::load(share);
    if (!obj) {
        int e = errno;
        throw Error(Code::BpfLoad,
                    failed("pf_datapath__open_and_load", "embedded BPF object", e) +
                        "; libbpf/verifier output (tail):\n" + capture.tail(1500),
                    capture.all());
    }
    set_engine(obj, Map::TcEngine, obj.tc_prog());
    set_engine(obj, Map::XdpEngine, obj.xdp_prog());

    if (::mkdir(tmp.c_str(), 0700) != 0) throw errno_error(Code::Io, "mkdir", tmp, errno);
    for (std::size_t i = 0; i < kMaps.size(); ++i)
        pin_fd(obj.map_fd(static_cast<Map>(i)), layout::map_pin(tmp, static_cast<Map>(i)));
    pin_fd(obj.tc_prog(), layout::tc_prog_pin(tmp));
    pin_fd(obj.xdp_prog(), layout::xdp_prog_pin(tmp));
}

} // namespace

bool is_bpffs(const std::string& path) {
    struct statfs st;
    return ::statfs(path.c_str(), &st) == 0 && st.f_type == static_cast<decltype(st.f_type)>(BPF_FS_MAGIC);
}

bool has_state(const std::string& bpffs_root) {
    struct stat st {};
    std::string dir = layout::podfence_dir(bpffs_root);
    return is_bpffs(bpffs_root) && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void ensure_bpffs(const std::string& bpffs_root) {
    if (!is_bpffs(bpffs_root)) {
        detail::mkdir_p(bpffs_root);
        // Private mode: pins under it hold pod state, not for other users.
        if (::mount("bpf", bpffs_root.c_str(), "bpf", 0, "mode=0700") != 0)
            throw errno_error(Code::Io, "mount -t bpf", bpffs_root, errno);
        if (!is_bpffs(bpffs_root))
            throw Error(Code::Io,
                        "mounted bpf at " + bpffs_root + " but statfs does not report BPF_FS_MAGIC");
        log::info("mounted bpffs at " + bpffs_root);
    }
    std::string dir = layout::podfence_dir(bpffs_root);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw errno_error(Code::Io, "mkdir", dir, errno);
}

namespace {

// Who holds the flock on `fd`: "pid N (comm)" from /proc/locks, which lists
// each lock with its owner's pid and the file's dev:inode.
std::string lock_holder(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return "another process";
    char want[64];
    std::snprintf(want, sizeof want, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                  static_cast<unsigned long long>(st.st_ino));
    std::ifstream locks("/proc/locks");
    for (std::string line; std::getline(locks, line);) {
        std::istringstream in(line);
        std::string id, type, advisory, access, pid, file;
        in >> id >> type; // waiting entries read "N: -> FLOCK ...": not the holder
        if (type != "FLOCK" || !(in >> advisory >> access >> pid >> file) || file != want) continue;
        std::string comm;
        std::getline(std::ifstream("/proc/" + pid + "/comm"), comm);
        return "pid " + pid + (comm.empty() ? "" : " (" + comm + ")");
    }
    return "another process";
}

} // namespace

NodeLock::NodeLock(const std::string& bpffs_root, std::chrono::milliseconds timeout) {
    using clock = std::chrono::steady_clock;
    std::string dir = layout::podfence_dir(bpffs_root);
    fd_ = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd_) throw errno_error(Code::Io, "open", dir, errno, "call ensure_bpffs first");
    const auto deadline = clock::now() + timeout;
    // Polled rather than blocking so the wait is bounded; verbs hold the lock
    // for milliseconds, so a short backoff costs little.
    std::chrono::milliseconds pause{1};
    while (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        if (errno != EWOULDBLOCK) throw errno_error(Code::Io, "flock(LOCK_EX)", dir, errno);
        if (clock::now() >= deadline)
            throw Error(Code::TryAgain, "the node lock " + dir + " is still held by " +
                                            lock_holder(fd_.get()) + " after " +
                                            std::to_string(timeout.count()) +
                                            " ms; retry, and if it persists find out why that process hangs");
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds{20});
    }
}

namespace {

std::vector<std::uint32_t> prog_map_ids(int prog_fd) {
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
        throw errno_error(Code::Io, "bpf_obj_get_info_by_fd", "program", errno);
    std::vector<std::uint32_t> ids(info.nr_map_ids);
    bpf_prog_info again{};
    again.nr_map_ids = static_cast<std::uint32_t>(ids.size());
    again.map_ids = reinterpret_cast<std::uintptr_t>(ids.data());
    len = sizeof again;
    if (bpf_obj_get_info_by_fd(prog_fd, &again, &len) != 0)
        throw errno_error(Code::Io, "bpf_obj_get_info_by_fd", "program maps", errno);
    ids.resize(std::min<std::size_t>(ids.size(), again.nr_map_ids));
    return ids;
}

// (map name, fd) of a program's maps.
std::vector<std::pair<std::string, UniqueFd>> prog_maps(int prog_fd) {
    std::vector<std::pair<std::string, UniqueFd>> out;
    for (std::uint32_t id : prog_map_ids(prog_fd)) {
        UniqueFd fd(bpf_map_get_fd_by_id(id));
        bpf_map_info info{};
        std::uint32_t len = sizeof info;
        if (!fd || bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) continue;
        out.emplace_back(info.name, std::move(fd));
    }
    return out;
}

} // namespace

std::vector<std::pair<Map, UniqueFd>> maps_behind_stub(int stub_fd) {
    std::vector<std::pair<Map, UniqueFd>> out;
    for (auto& [name, fd] : prog_maps(stub_fd)) {
        if (name != map_info(Map::TcEngine).name && name != map_info(Map::XdpEngine).name) continue;
        std::uint32_t key = 0, engine_id = 0; // a prog array yields the program's id
        if (bpf_map_lookup_elem(fd.get(), &key, &engine_id) != 0) continue;
        UniqueFd engine(bpf_prog_get_fd_by_id(engine_id));
        if (!engine) continue;
        for (auto& emap : prog_maps(engine.get())) {
            auto m = std::find_if(std::begin(kSharedMaps), std::end(kSharedMaps),
                                  [&](Map s) { return emap.first == map_info(s).name; });
            if (m != std::end(kSharedMaps)) out.emplace_back(*m, std::move(emap.second));
        }
        break;
    }
    return out;
}

void backup_engine_pins(const std::string& root, const Datapath& dp) {
    const std::string name = dp.dir().substr(dp.dir().find_last_of('/') + 1);
    try {
        const std::string dir = layout::backup_bpffs(root);
        if (!is_bpffs(dir)) {
            detail::mkdir_p(dir);
            if (::mount("bpf", dir.c_str(), "bpf", 0, "mode=0700") != 0)
                throw errno_error(Code::Io, "mount -t bpf", dir, errno);
        }
        for (Map m : {Map::TcEngine, Map::XdpEngine}) {
            const std::string pin = layout::backup_pin(root, name, m);
            if (!detail::exists(pin) && bpf_obj_pin(dp.map(m), pin.c_str()) != 0)
                throw errno_error(Code::Io, "bpf_obj_pin", pin, errno);
        }
    } catch (const std::exception& e) {
        log::warn(std::string("backup pins of the engine arrays (traffic through a lost bpffs): ") +
                  e.what());
    }
}

void remove_backup_pins(const std::string& root, const std::vector<std::string>& keep) {
    const std::string dir = layout::backup_bpffs(root);
    if (!is_bpffs(dir)) return;
    for (const auto& n : detail::list_dir(dir)) {
        // Ours are all "<datapath>_<map>"; the kernel's own entries of a
        // bpffs instance (progs.debug, maps.debug) are not.
        if (n.find('_') == std::string::npos) continue;
        const bool kept = std::any_of(keep.begin(), keep.end(), [&](const std::string& k) {
            return n.size() > k.size() && n.compare(0, k.size(), k) == 0 && n[k.size()] == '_';
        });
        const std::string pin = dir + "/" + n;
        if (!kept && ::unlink(pin.c_str()) != 0 && errno != ENOENT) log::warn(failed("unlink", pin, errno));
    }
}

namespace {

pf_config read_config(const Datapath& dp) {
    std::uint32_t key = 0;
    pf_config cfg{};
    if (bpf_map_lookup_elem(dp.config_map(), &key, &cfg) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_lookup_elem", dp.dir() + "/pf_config", errno);
    return cfg;
}

} // namespace

void adopt_wide_ipv4_flows(const Datapath& to, const Datapath* from, const std::string& from_dir) {
    if (to.conntrack4_map() < 0) return;
    std::uint64_t until = 0;
    if (datapath_abi(from_dir) < map_info(Map::Conntrack4).since_abi) { // IPv4 in the wide table
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now); // the base of bpf_ktime_get_coarse_ns
        until = static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull +
                static_cast<std::uint64_t>(now.tv_nsec) + PF_CT_TIMEOUT_TCP;
    } else if (from && from->conntrack4_map() >= 0) {
        until = read_config(*from).wide_v4_until_ns; // a second upgrade within the window
    }
    // A one-entry array: read first, the other fields stay.
    pf_config cfg = read_config(to);
    if (until <= cfg.wide_v4_until_ns) return;
    cfg.wide_v4_until_ns = until;
    std::uint32_t key = 0;
    if (bpf_map_update_elem(to.config_map(), &key, &cfg, BPF_ANY) != 0)
        throw errno_error(Code::MapSeed, "bpf_map_update_elem", to.dir() + "/pf_config", errno);
}

std::string embedded_datapath_name() {
    static const std::string name = [] {
        // Both objects: the per-attachment program runs only on the datapath
        // of the same name (stub.cpp), whose maps and engine it assumes.
        const auto elf = EmbeddedObject::elf(), fast = EmbeddedObject::fastpath_elf();
        const std::uint64_t h = detail::fnv1a64(elf.data(), elf.size());
        return layout::datapath_name(PF_ABI_VERSION, detail::fnv1a64(fast.data(), fast.size(), h));
    }();
    return name;
}

Datapath Datapath::open_dir(const std::string& dir) {
    Datapath dp;
    dp.dir_ = dir;
    dp.tc_prog_ = get_pin(layout::tc_prog_pin(dir));
    dp.xdp_prog_ = get_pin(layout::xdp_prog_pin(dir));
    for (std::size_t i = 0; i < kMaps.size(); ++i) {
        const std::string pin = layout::map_pin(dir, static_cast<Map>(i));
        // A map newer than the datapath's ABI (pf_sources, pf_frags before
        // ABI 4) may be absent: DEL/GC must still open such a datapath.
        if (dp.abi() >= kMaps[i].since_abi || detail::exists(pin)) dp.maps_[i] = get_pin(pin);
    }
    return dp;
}

namespace {

// The maps a new datapath takes over from one still in use, so that an
// upgrade keeps established flows: conntrack and fragment state of every
// slot (slots keep their number when pods move). The first pinned one of
// another datapath directory is offered; EmbeddedObject::load checks layout.
std::vector<std::pair<Map, UniqueFd>> shareable_maps(const std::string& bpffs_root, const std::string& skip) {
    std::vector<std::pair<Map, UniqueFd>> out;
    const std::string base = layout::podfence_dir(bpffs_root);
    for (Map m : kSharedMaps) {
        for (const auto& n : detail::list_dir(base)) {
            if (!layout::is_datapath_name(n) || n == skip) continue;
            int fd = bpf_obj_get(layout::map_pin(layout::pin_path(base, n), m).c_str());
            if (fd < 0) continue;
            out.emplace_back(m, UniqueFd(fd));
            break;
        }
    }
    return out;
}

} // namespace

std::vector<std::string> remove_unfinished_builds(const std::string& bpffs_root) {
    const std::string base = layout::podfence_dir(bpffs_root);
    std::vector<std::string> removed;
    for (const auto& n : detail::list_dir(base)) {
        if (!layout::is_tmp_datapath_name(n)) continue;
        detail::remove_pin_dir(layout::pin_path(base, n));
        removed.push_back(n);
    }
    return removed;
}

Datapath Datapath::open_or_load(const std::string& bpffs_root, std::vector<std::pair<Map, UniqueFd>> share) {
    const std::string base = layout::podfence_dir(bpffs_root);
    const std::string name = embedded_datapath_name();
    const std::string dir = layout::datapath_dir(bpffs_root, name);
    if (has_all_pins(dir)) {
        Datapath dp = open_dir(dir);
        backup_engine_pins(bpffs_root, dp); // stats only, once they exist
        return dp;
    }

    // Leftovers of a verb that died mid-load: never trusted, removed (we hold
    // the NodeLock, so no one else is building one right now).
    for (const auto& n : remove_unfinished_builds(bpffs_root))
        log::warn("removed incomplete datapath build " + layout::pin_path(base, n));
    if (detail::exists(dir)) {
        // Only rename() creates `dir`, so a partial one means someone removed
        // pins by hand: its maps are unusable as a whole anyway.
        log::warn("datapath " + dir + " lacks pins; replacing it");
        detail::remove_pin_dir(dir);
    }

    const std::string tmp = layout::tmp_datapath_dir(bpffs_root, name, ::getpid());
    try {
        for (auto& c : shareable_maps(bpffs_root, name))
            share.push_back(std::move(c));
        std::vector<std::pair<Map, int>> fds;
        for (const auto& candidate : share) // the first one of each map wins
            if (std::none_of(fds.begin(), fds.end(),
                             [&](const auto& f) { return f.first == candidate.first; }))
                fds.emplace_back(candidate.first, candidate.second.get());
        load_and_pin(tmp, fds);
        // All pins appear at once: a crash before this line leaves only a
        // tmp- dir that the next verb discards.
        if (::rename(tmp.c_str(), dir.c_str()) != 0)
            throw errno_error(Code::Io, "rename", tmp + " -> " + dir, errno);
    } catch (...) {
        try {
            detail::remove_pin_dir(tmp);
        } catch (const std::exception& e) {
            log::warn(std::string("cleanup of ") + tmp + " failed: " + e.what());
        }
        throw;
    }
    log::info("loaded datapath " + dir);
    Datapath dp = open_dir(dir);
    // A datapath of the same name that was lost with its bpffs left backup
    // pins, which its live stubs still need until `repair` moves them: set
    // aside, removed with the unused datapaths.
    for (Map m : {Map::TcEngine, Map::XdpEngine}) {
        const std::string pin = layout::backup_pin(bpffs_root, name, m);
        const std::string aside = layout::backup_pin(bpffs_root, name + "-lost", m);
        if (detail::exists(pin) && ::rename(pin.c_str(), aside.c_str()) != 0)
            log::warn(failed("rename", pin + " -> " + aside, errno));
    }
    backup_engine_pins(bpffs_root, dp);
    return dp;
}

} // namespace podfence::bpf
