// Attachment records pinned in bpffs (see state.hpp for the layout).
#include "state.hpp"

#include <bpf/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "layout.hpp"
#include "pins.hpp"
#include "util.hpp"

namespace podfence::bpf {

using nlohmann::json;

namespace {

// The record's keys and the fields they hold, in one list for writing and
// reading. Optional keys are absent in records of older podfence versions.
enum class Key { Required, Optional };
template <typename Record, typename Field> void record_fields(Record& r, Field&& field) {
    field("containerID", r.container_id, Key::Required);
    field("ifname", r.ifname, Key::Required);
    field("network", r.network, Key::Optional); // since GC is per network
    field("netns", r.netns, Key::Required);
    field("datapathDir", r.datapath_dir, Key::Required);
    field("hostIfname", r.host_ifname, Key::Required);
    field("hostIfindex", r.host_ifindex, Key::Required);
    field("podIfindex", r.pod_ifindex, Key::Required);
    field("slot", r.slot, Key::Required);
    field("rev", r.rev, Key::Required);
    field("legacyQdiscCreated", r.legacy_qdisc_created, Key::Required);
    field("sourceCheck", r.source_check, Key::Optional); // since the source check
    field("sources", r.sources, Key::Optional);
    // Set while the pod moves to another datapath (verbs/upgrade.cpp).
    field("previousDatapathDir", r.previous_datapath_dir, Key::Optional);
    field("previousSlot", r.previous_slot, Key::Optional);
    field("podNamespace", r.pod_namespace, Key::Optional); // since pod identity
    field("podName", r.pod_name, Key::Optional);
    field("podUID", r.pod_uid, Key::Optional);
    field("enforcement", r.enforcement, Key::Optional); // since audit mode
}

// The hook as the keys "mode", "tcBackend" and "xdpMode" spell it, which
// records have always used.
struct ModeKeys {
    AttachMode mode;
    const char* mode_key;
    const char* tc_backend;
    const char* xdp_mode;
};
constexpr ModeKeys kModeKeys[] = {
    {AttachMode::Tcx, "tc", "tcx", ""},
    {AttachMode::TcLegacy, "tc", "legacy", ""},
    {AttachMode::XdpNative, "xdp", "", "native"},
    {AttachMode::XdpGeneric, "xdp", "", "generic"},
};

AttachMode mode_from_json(const json& j) {
    const std::string mode = j.value("mode", ""), tc = j.value("tcBackend", ""), xdp = j.value("xdpMode", "");
    for (const auto& k : kModeKeys)
        if (mode == k.mode_key && (mode == "tc" ? tc == k.tc_backend : xdp == k.xdp_mode)) return k.mode;
    return AttachMode::Unknown;
}

} // namespace

std::string_view to_string(AttachMode m) {
    switch (m) {
    case AttachMode::Tcx: return "tc/tcx";
    case AttachMode::TcLegacy: return "tc/legacy";
    case AttachMode::XdpNative: return "xdp/native";
    case AttachMode::XdpGeneric: return "xdp/generic";
    case AttachMode::Unknown: break;
    }
    return "unknown";
}

json to_json(const AttachmentRecord& r) {
    json j = json::object();
    record_fields(r, [&](const char* key, const auto& value, Key) { j[key] = value; });
    for (const auto& k : kModeKeys)
        if (k.mode == r.mode) {
            j["mode"] = k.mode_key;
            j["tcBackend"] = k.tc_backend;
            j["xdpMode"] = k.xdp_mode;
        }
    // The canonical policy (policy::to_json), as an object for readers.
    json policy = json::parse(r.policy_json, nullptr, false);
    j["policy"] = policy.is_discarded() ? json(r.policy_json) : policy;
    return j;
}

AttachmentRecord record_from_json(const json& in) {
    json j = in;
    // Records before the one JSON form spelled it "containerId".
    if (!j.contains("containerID") && j.contains("containerId")) j["containerID"] = j["containerId"];
    AttachmentRecord r;
    record_fields(r, [&](const char* key, auto& value, Key k) {
        if (k == Key::Required || j.contains(key)) j.at(key).get_to(value);
    });
    r.mode = mode_from_json(j);
    // Earlier records hold the policy as a JSON string.
    const json& policy = j.at("policy");
    r.policy_json = policy.is_string() ? policy.get<std::string>() : policy.dump();
    return r;
}

namespace {

// Pins the JSON as a 1-entry array map at `path` (must not exist).
void pin_record(const AttachmentRecord& rec, const std::string& path) {
    std::string text = to_json(rec).dump();
    // +1 keeps a NUL terminator; 8-byte rounding is what the kernel stores anyway.
    std::uint32_t value_size = static_cast<std::uint32_t>((text.size() + 1 + 7) & ~std::size_t{7});
    std::vector<char> value(value_size, 0);
    std::memcpy(value.data(), text.data(), text.size());
    UniqueFd fd(
        bpf_map_create(BPF_MAP_TYPE_ARRAY, "pf_record", sizeof(std::uint32_t), value_size, 1, nullptr));
    if (!fd) throw errno_error(Code::Io, "bpf_map_create", "record for " + path, errno);
    std::uint32_t key = 0;
    if (bpf_map_update_elem(fd.get(), &key, value.data(), BPF_ANY) != 0)
        throw errno_error(Code::Io, "bpf_map_update_elem", "record " + path, errno);
    if (bpf_obj_pin(fd.get(), path.c_str()) != 0) throw errno_error(Code::Io, "bpf_obj_pin", path, errno);
}

// Where a copy is written before its rename over `path`.
std::string mirror_tmp(const std::string& path) {
    return path + ".tmp";
}

// The record's copy outside bpffs (layout::record_mirror), written aside
// and renamed. A failure is logged, not raised: the pod is enforced without
// it; only a repair after a lost bpffs would miss it.
void write_mirror(const std::string& root, const std::string& dir, const AttachmentRecord& rec) {
    const std::string path = layout::record_mirror(root, dir), tmp = mirror_tmp(path);
    try {
        detail::mkdir_p(layout::mirror_dir(root));
        {
            std::ofstream out(tmp, std::ios::trunc);
            out << to_json(rec).dump() << "\n";
            if (!out.flush()) throw errno_error(Code::Io, "write", tmp, errno);
        }
        if (::rename(tmp.c_str(), path.c_str()) != 0) throw errno_error(Code::Io, "rename", tmp, errno);
    } catch (const std::exception& e) {
        log::warn(std::string("record copy for repairs: ") + e.what());
    }
}

std::optional<AttachmentRecord> read_mirror(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    try {
        return record_from_json(json::parse(in));
    } catch (const json::exception& e) {
        log::warn("record copy " + path + " is unreadable: " + e.what());
        return std::nullopt;
    }
}

AttachmentRecord read_record(const std::string& path) {
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd) throw errno_error(Code::Io, "bpf_obj_get", path, errno);
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
        throw errno_error(Code::Io, "bpf_obj_get_info_by_fd", path, errno);
    if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 || info.value_size == 0)
        throw Error(Code::Io, path + " is not a podfence record map");
    std::vector<char> value(info.value_size + 1, 0);
    std::uint32_t key = 0;
    if (bpf_map_lookup_elem(fd.get(), &key, value.data()) != 0)
        throw errno_error(Code::Io, "bpf_map_lookup_elem", path, errno);
    try {
        return record_from_json(json::parse(std::string(value.data())));
    } catch (const json::exception& e) {
        throw Error(Code::Decode, "record " + path + " is not a valid attachment record: " + e.what());
    }
}

} // namespace

StateStore::StateStore(std::string bpffs_root) : root_(std::move(bpffs_root)) {}

std::string StateStore::dir_for(const std::string& container_id, const std::string& ifname) const {
    return layout::attachment_dir(root_, container_id, ifname);
}

std::string StateStore::create(const AttachmentRecord& rec) {
    std::string dir = dir_for(rec.container_id, rec.ifname);
    detail::mkdir_p(dir);
    std::string path = layout::record_pin(dir);
    if (detail::exists(path)) {
        // ADD retried for the same attachment: replace the stale record.
        update(rec);
        return dir;
    }
    pin_record(rec, path);
    write_mirror(root_, dir, rec);
    return dir;
}

void StateStore::update(const AttachmentRecord& rec) {
    std::string dir = dir_for(rec.container_id, rec.ifname);
    if (!detail::exists(dir))
        throw Error(Code::Io, "update of attachment record: " + dir + " does not exist");
    // The JSON length (and so the value size) may change: pin a new map
    // aside and rename it over the old one, so a reader sees one or the other.
    std::string tmp = layout::record_tmp_pin(dir);
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) throw errno_error(Code::Io, "unlink", tmp, errno);
    pin_record(rec, tmp);
    std::string path = layout::record_pin(dir);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        (void)::unlink(tmp.c_str()); // best effort: the rename's error is the one to report
        throw errno_error(Code::Io, "rename", tmp + " -> " + path, e);
    }
    write_mirror(root_, dir, rec);
}

std::optional<AttachmentRecord> StateStore::find(const std::string& container_id,
                                                 const std::string& ifname) const {
    std::string path = layout::record_pin(dir_for(container_id, ifname));
    if (!detail::exists(path)) return std::nullopt;
    AttachmentRecord rec = read_record(path);
    // A hashed directory name could collide: trust only an exact match.
    if (rec.container_id != container_id || rec.ifname != ifname) {
        log::warn("attachment record " + path + " belongs to " + rec.container_id + "/" + rec.ifname +
                  ", not " + container_id + "/" + ifname);
        return std::nullopt;
    }
    return rec;
}

std::vector<AttachmentRecord> StateStore::list() const {
    std::string base = layout::attachments_dir(root_);
    std::vector<AttachmentRecord> out;
    for (const auto& n : detail::list_dir(base)) {
        std::string path = layout::record_pin(layout::pin_path(base, n));
        try {
            out.push_back(read_record(path));
        } catch (const Error& e) {
            log::warn("skipping attachment dir " + layout::pin_path(base, n) + ": " + e.what());
        }
    }
    return out;
}

std::size_t StateStore::count() const {
    return detail::list_dir(layout::attachments_dir(root_)).size();
}

namespace {

void remove_dir(const std::string& dir) {
    // Unpinning a link nobody else holds detaches it, but only once the
    // kernel gets round to freeing it; detach explicitly so the program is
    // off the interface when DEL returns.
    for (const auto& n : detail::list_dir(dir))
        if (layout::is_link_pin(n)) detach_link(layout::pin_path(dir, n));
    detail::remove_pin_dir(dir);
}

bool is_orphan(const std::string& dir) {
    return detail::exists(dir) && !detail::exists(layout::record_pin(dir));
}

} // namespace

void StateStore::remove(const std::string& container_id, const std::string& ifname) {
    const std::string dir = dir_for(container_id, ifname);
    if (detail::exists(dir)) remove_dir(dir);
    const std::string mirror = layout::record_mirror(root_, dir);
    // Also the copy a verb killed while writing it left aside.
    for (const std::string& path : {mirror, mirror_tmp(mirror)})
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            throw errno_error(Code::Io, "unlink", path, errno);
}

std::optional<AttachmentRecord> StateStore::find_lost(const std::string& container_id,
                                                      const std::string& ifname) const {
    const std::string dir = dir_for(container_id, ifname);
    if (detail::exists(layout::record_pin(dir))) return std::nullopt;
    auto rec = read_mirror(layout::record_mirror(root_, dir));
    if (rec && (rec->container_id != container_id || rec->ifname != ifname)) return std::nullopt;
    return rec;
}

bool StateStore::has_copies() const {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(layout::mirror_dir(root_), ec))
        if (e.path().extension() == ".json") return true;
    return false;
}

std::vector<AttachmentRecord> StateStore::list_lost() const {
    std::vector<AttachmentRecord> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(layout::mirror_dir(root_), ec)) {
        if (e.path().extension() != ".json") continue;
        auto rec = read_mirror(e.path().string());
        if (rec && !detail::exists(layout::record_pin(dir_for(rec->container_id, rec->ifname))))
            out.push_back(std::move(*rec));
    }
    return out;
}

bool StateStore::remove_orphan(const std::string& container_id, const std::string& ifname) {
    const std::string dir = dir_for(container_id, ifname);
    if (!is_orphan(dir)) return false;
    remove_dir(dir);
    return true;
}

std::vector<std::string> StateStore::remove_orphans() {
    const std::string base = layout::attachments_dir(root_);
    std::vector<std::string> removed;
    for (const auto& n : detail::list_dir(base)) {
        const std::string dir = layout::pin_path(base, n);
        if (!is_orphan(dir)) continue;
        remove_dir(dir);
        removed.push_back(n);
    }
    // A record copy's write aside (write_mirror) that a kill interrupted:
    // every writer holds the NodeLock, as the caller does, so none is live.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(layout::mirror_dir(root_), ec))
        if (e.path().extension() == ".tmp" && ::unlink(e.path().c_str()) == 0)
            removed.push_back(e.path().filename().string());
    return removed;
}

} // namespace podfence::bpf
