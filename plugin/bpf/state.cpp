// Attachment records pinned in bpffs (see state.hpp for the layout).
#include "state.hpp"

#include <bpf/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "layout.hpp"
#include "util.hpp"

namespace podfence::bpf {

using detail::failed;
using nlohmann::json;

namespace {

json to_json(const AttachmentRecord& r) {
    return json{{"containerId", r.container_id},
                {"ifname", r.ifname},
                {"network", r.network},
                {"netns", r.netns},
                {"mode", r.mode},
                {"tcBackend", r.tc_backend},
                {"xdpMode", r.xdp_mode},
                {"datapathDir", r.datapath_dir},
                {"hostIfname", r.host_ifname},
                {"hostIfindex", r.host_ifindex},
                {"podIfindex", r.pod_ifindex},
                {"slot", r.slot},
                {"rev", r.rev},
                {"legacyQdiscCreated", r.legacy_qdisc_created},
                {"policy", r.policy_json},
                {"sourceCheck", r.source_check},
                {"sources", r.sources}};
}

AttachmentRecord from_json(const json& j) {
    AttachmentRecord r;
    j.at("containerId").get_to(r.container_id);
    j.at("ifname").get_to(r.ifname);
    r.network = j.value("network", std::string{}); // absent in records before GC was per network
    j.at("netns").get_to(r.netns);
    j.at("mode").get_to(r.mode);
    j.at("tcBackend").get_to(r.tc_backend);
    j.at("xdpMode").get_to(r.xdp_mode);
    j.at("datapathDir").get_to(r.datapath_dir);
    j.at("hostIfname").get_to(r.host_ifname);
    j.at("hostIfindex").get_to(r.host_ifindex);
    j.at("podIfindex").get_to(r.pod_ifindex);
    j.at("slot").get_to(r.slot);
    j.at("rev").get_to(r.rev);
    j.at("legacyQdiscCreated").get_to(r.legacy_qdisc_created);
    j.at("policy").get_to(r.policy_json);
    // Records of podfence before the source check have neither key.
    r.source_check = j.value("sourceCheck", false);
    r.sources = j.value("sources", std::vector<std::string>{});
    return r;
}

// Pins the JSON as a 1-entry array map at `path` (must not exist).
void pin_record(const AttachmentRecord& rec, const std::string& path) {
    std::string text = to_json(rec).dump();
    // +1 keeps a NUL terminator; 8-byte rounding is what the kernel stores anyway.
    std::uint32_t value_size = static_cast<std::uint32_t>((text.size() + 1 + 7) & ~std::size_t{7});
    std::vector<char> value(value_size, 0);
    std::memcpy(value.data(), text.data(), text.size());
    UniqueFd fd(
        bpf_map_create(BPF_MAP_TYPE_ARRAY, "pf_record", sizeof(std::uint32_t), value_size, 1, nullptr));
    if (!fd) throw Error(Code::Io, failed("bpf_map_create", "record for " + path, errno));
    std::uint32_t key = 0;
    if (bpf_map_update_elem(fd.get(), &key, value.data(), BPF_ANY) != 0)
        throw Error(Code::Io, failed("bpf_map_update_elem", "record " + path, errno));
    if (bpf_obj_pin(fd.get(), path.c_str()) != 0) throw Error(Code::Io, failed("bpf_obj_pin", path, errno));
}

AttachmentRecord read_record(const std::string& path) {
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd) throw Error(Code::Io, failed("bpf_obj_get", path, errno));
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
        throw Error(Code::Io, failed("bpf_obj_get_info_by_fd", path, errno));
    if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 || info.value_size == 0)
        throw Error(Code::Io, path + " is not a podfence record map");
    std::vector<char> value(info.value_size + 1, 0);
    std::uint32_t key = 0;
    if (bpf_map_lookup_elem(fd.get(), &key, value.data()) != 0)
        throw Error(Code::Io, failed("bpf_map_lookup_elem", path, errno));
    try {
        return from_json(json::parse(std::string(value.data())));
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
    return dir;
}

void StateStore::update(const AttachmentRecord& rec) {
    std::string dir = dir_for(rec.container_id, rec.ifname);
    if (!detail::exists(dir))
        throw Error(Code::Io, "update of attachment record: " + dir + " does not exist");
    // The JSON length (and so the value size) may change: pin a new map
    // aside and rename it over the old one, so a reader sees one or the other.
    std::string tmp = layout::record_tmp_pin(dir);
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) throw Error(Code::Io, failed("unlink", tmp, errno));
    pin_record(rec, tmp);
    std::string path = layout::record_pin(dir);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw Error(Code::Io, failed("rename", tmp + " -> " + path, e));
    }
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

void StateStore::remove(const std::string& container_id, const std::string& ifname) {
    // Unpinning a link nobody else holds detaches it, but only once the
    // kernel gets round to freeing it; detach explicitly so the program is
    // off the interface when DEL returns.
    const std::string dir = dir_for(container_id, ifname);
    for (const auto& n : detail::list_dir(dir))
        if (layout::is_link_pin(n)) detail::detach_link_pin(layout::pin_path(dir, n));
    detail::remove_pin_dir(dir);
}

} // namespace podfence::bpf
