// Loading the embedded BPF object once per node and reusing its pins.
#include "datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <string_view>

#include "bpf/podfence_abi.h"
#include "common/error.hpp"
#include "common/log.hpp"
#include "libbpf_log.hpp"
#include "skel_glue.hpp"
#include "util.hpp"

namespace podfence::bpf {

using detail::failed;

namespace {

// Every pinned map, by the name it has in bpf/maps.h (= its pin name).
constexpr std::array<const char*, 12> kMapPins = {
    "pf_policy",   "pf_pods",      "pf_scratch", "pf_tc_engine", "pf_xdp_engine", "pf_conntrack",
    "pf_counters", "pf_rule_hits", "pf_config",  "pf_events",    "pf_sources",    "pf_frags"};

std::string podfence_dir(const std::string& root) {
    return root + "/podfence";
}

bool has_all_pins(const std::string& dir) {
    for (const char* m : kMapPins)
        if (!detail::exists(dir + "/" + m)) return false;
    return detail::exists(dir + "/" PF_PIN_PROG_TC) && detail::exists(dir + "/" PF_PIN_PROG_XDP);
}

UniqueFd get_pin(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) throw Error(Code::BpfLoad, failed("bpf_obj_get", path, errno) + " (datapath incomplete?)");
    return UniqueFd(fd);
}

void pin_fd(int fd, const std::string& path) {
    if (bpf_obj_pin(fd, path.c_str()) != 0) throw Error(Code::BpfLoad, failed("bpf_obj_pin", path, errno));
}

struct SkelDeleter {
    void operator()(pf_skel::Loaded* s) const { pf_skel::destroy(s); }
};

void set_engine(int map_fd, int prog_fd, const char* map) {
    std::uint32_t key = 0;
    auto value = static_cast<std::uint32_t>(prog_fd);
    if (bpf_map_update_elem(map_fd, &key, &value, BPF_ANY) != 0)
        throw Error(Code::BpfLoad, failed("bpf_map_update_elem", std::string(map) + "[0]", errno));
}

// Loads the skeleton and pins everything into `tmp` (which must not exist).
void load_and_pin(const std::string& tmp) {
    detail::LibbpfCapture capture;
    std::unique_ptr<pf_skel::Loaded, SkelDeleter> skel(pf_skel::open_and_load());
    if (!skel) {
        int e = errno;
        throw Error(Code::BpfLoad,
                    failed("podfence__open_and_load", "embedded BPF object", e) +
                        "; libbpf/verifier output (tail):\n" + capture.tail(1500),
                    capture.all());
    }
    bpf_object* obj = pf_skel::object(skel.get());
    const int tc_fd = bpf_program__fd(pf_skel::prog_tc(skel.get()));
    const int xdp_fd = bpf_program__fd(pf_skel::prog_xdp(skel.get()));
    auto map_fd = [&](const char* m) {
        bpf_map* map = bpf_object__find_map_by_name(obj, m);
        if (!map) throw Error(Code::BpfLoad, std::string("embedded BPF object has no map ") + m);
        return bpf_map__fd(map);
    };
    set_engine(map_fd("pf_tc_engine"), tc_fd, "pf_tc_engine");
    set_engine(map_fd("pf_xdp_engine"), xdp_fd, "pf_xdp_engine");

    if (::mkdir(tmp.c_str(), 0700) != 0) throw Error(Code::BpfLoad, failed("mkdir", tmp, errno));
    for (const char* m : kMapPins)
        pin_fd(map_fd(m), tmp + "/" + m);
    pin_fd(tc_fd, tmp + "/" PF_PIN_PROG_TC);
    pin_fd(xdp_fd, tmp + "/" PF_PIN_PROG_XDP);
}

} // namespace

bool is_bpffs(const std::string& path) {
    struct statfs st;
    return ::statfs(path.c_str(), &st) == 0 && st.f_type == static_cast<decltype(st.f_type)>(BPF_FS_MAGIC);
}

void ensure_bpffs(const std::string& bpffs_root) {
    if (!is_bpffs(bpffs_root)) {
        detail::mkdir_p(bpffs_root);
        // Private mode: pins under it hold pod state, not for other users.
        if (::mount("bpf", bpffs_root.c_str(), "bpf", 0, "mode=0700") != 0)
            throw Error(Code::Io, failed("mount -t bpf", bpffs_root, errno));
        if (!is_bpffs(bpffs_root))
            throw Error(Code::Io,
                        "mounted bpf at " + bpffs_root + " but statfs does not report BPF_FS_MAGIC");
        log::info("mounted bpffs at " + bpffs_root);
    }
    std::string dir = podfence_dir(bpffs_root);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error(Code::Io, failed("mkdir", dir, errno));
}

NodeLock::NodeLock(const std::string& bpffs_root) {
    std::string dir = podfence_dir(bpffs_root);
    fd_ = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd_) throw Error(Code::Io, failed("open", dir, errno) + " (call ensure_bpffs first)");
    while (::flock(fd_.get(), LOCK_EX) != 0) {
        if (errno != EINTR) throw Error(Code::Io, failed("flock(LOCK_EX)", dir, errno));
    }
}

std::string embedded_datapath_name() {
    std::size_t sz = 0;
    const void* elf = pf_skel::elf_bytes(&sz);
    return "datapath-abi" + std::to_string(PF_ABI_VERSION) + "-" + detail::hex16(detail::fnv1a64(elf, sz));
}

unsigned datapath_abi(const std::string& dir) {
    const std::string_view name = std::string_view(dir).substr(dir.find_last_of('/') + 1);
    constexpr std::string_view prefix = "datapath-abi";
    if (!name.starts_with(prefix)) return 0;
    const char* end = name.data() + name.size();
    unsigned abi = 0;
    auto [p, ec] = std::from_chars(name.data() + prefix.size(), end, abi);
    return ec == std::errc() && p != end && *p == '-' ? abi : 0;
}

Datapath Datapath::open_dir(const std::string& dir) {
    Datapath dp;
    dp.dir_ = dir;
    dp.tc_prog_ = get_pin(dir + "/" PF_PIN_PROG_TC);
    dp.xdp_prog_ = get_pin(dir + "/" PF_PIN_PROG_XDP);
    dp.policy_ = get_pin(dir + "/pf_policy");
    dp.pods_ = get_pin(dir + "/pf_pods");
    dp.scratch_ = get_pin(dir + "/pf_scratch");
    dp.tc_engine_ = get_pin(dir + "/pf_tc_engine");
    dp.xdp_engine_ = get_pin(dir + "/pf_xdp_engine");
    dp.conntrack_ = get_pin(dir + "/pf_conntrack");
    dp.counters_ = get_pin(dir + "/pf_counters");
    dp.rule_hits_ = get_pin(dir + "/pf_rule_hits");
    dp.config_ = get_pin(dir + "/pf_config");
    dp.events_ = get_pin(dir + "/pf_events");
    // Older datapaths (ABI < 4) have no source check; DEL/GC must still open them.
    if (dp.abi() >= 4 || detail::exists(dir + "/pf_sources")) dp.sources_ = get_pin(dir + "/pf_sources");
    // Fragment state came with ABI 4 too.
    if (dp.abi() >= 4 || detail::exists(dir + "/pf_frags")) dp.frags_ = get_pin(dir + "/pf_frags");
    return dp;
}

Datapath Datapath::open_or_load(const std::string& bpffs_root) {
    const std::string base = podfence_dir(bpffs_root);
    const std::string name = embedded_datapath_name();
    const std::string dir = base + "/" + name;
    if (has_all_pins(dir)) return open_dir(dir);

    // Leftovers of a verb that died mid-load: never trusted, removed (we hold
    // the NodeLock, so no one else is building one right now).
    for (const auto& n : detail::list_dir(base)) {
        if (n.rfind("tmp-", 0) == 0) {
            log::warn("removing incomplete datapath build " + base + "/" + n);
            detail::remove_pin_dir(base + "/" + n);
        }
    }
    if (detail::exists(dir)) {
        // Only rename() creates `dir`, so a partial one means someone removed
        // pins by hand: its maps are unusable as a whole anyway.
        log::warn("datapath " + dir + " lacks pins; replacing it");
        detail::remove_pin_dir(dir);
    }

    // bpffs refuses names containing '.', hence no dot-file here.
    const std::string tmp = base + "/tmp-" + name + "-" + std::to_string(::getpid());
    try {
        load_and_pin(tmp);
        // All pins appear at once: a crash before this line leaves only a
        // tmp- dir that the next verb discards.
        if (::rename(tmp.c_str(), dir.c_str()) != 0)
            throw Error(Code::BpfLoad, failed("rename", tmp + " -> " + dir, errno));
    } catch (...) {
        try {
            detail::remove_pin_dir(tmp);
        } catch (const std::exception& e) {
            log::warn(std::string("cleanup of ") + tmp + " failed: " + e.what());
        }
        throw;
    }
    log::info("loaded datapath " + dir);
    return open_dir(dir);
}

} // namespace podfence::bpf
