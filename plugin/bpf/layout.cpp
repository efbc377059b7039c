#include "layout.hpp"

#include <cctype>
#include <charconv>
#include <cstdio>

#include "bpf/podfence_abi.h"
#include "util.hpp"

namespace podfence::bpf::layout {
namespace {

constexpr std::string_view kDatapathPrefix = "datapath-";
constexpr std::string_view kAbiPrefix = "datapath-abi";
constexpr std::string_view kTmpPrefix = "tmp-";

bool id_is_plain(const std::string& s) {
    if (s.empty() || s.size() > 128) return false;
    for (unsigned char c : s)
        if (!std::isalnum(c) && c != '_' && c != '-') return false;
    return true;
}

// Escapes everything but [A-Za-z0-9-] as %XX: injective, leaves no '_' so
// the last '_' of a directory name always separates id from ifname, and no
// '.', which bpffs refuses in names.
std::string escape_ifname(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-') {
            out += static_cast<char>(c);
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

} // namespace

bool is_link_pin(std::string_view name) {
    return name.starts_with("link_");
}

std::string pin_path(const std::string& dir, std::string_view name) {
    std::string p = dir;
    p += '/';
    p += name;
    return p;
}

std::string podfence_dir(const std::string& bpffs_root) {
    return bpffs_root + "/podfence";
}

std::string datapath_name(unsigned abi, std::uint64_t object_hash) {
    return std::string(kAbiPrefix) + std::to_string(abi) + "-" + detail::hex16(object_hash);
}

bool is_datapath_name(std::string_view name) {
    return name.starts_with(kDatapathPrefix);
}

unsigned datapath_abi(const std::string& dir) {
    const std::string_view name = std::string_view(dir).substr(dir.find_last_of('/') + 1);
    if (!name.starts_with(kAbiPrefix)) return 0;
    const char* end = name.data() + name.size();
    unsigned abi = 0;
    auto [p, ec] = std::from_chars(name.data() + kAbiPrefix.size(), end, abi);
    return ec == std::errc() && p != end && *p == '-' ? abi : 0;
}

std::string datapath_dir(const std::string& bpffs_root, const std::string& name) {
    return pin_path(podfence_dir(bpffs_root), name);
}

std::string tmp_datapath_dir(const std::string& bpffs_root, const std::string& name, long pid) {
    // bpffs refuses names containing '.', hence no dot-file.
    return pin_path(podfence_dir(bpffs_root), std::string(kTmpPrefix) + name + "-" + std::to_string(pid));
}

bool is_tmp_datapath_name(std::string_view name) {
    return name.starts_with(kTmpPrefix);
}

std::string map_pin(const std::string& datapath_dir, Map m) {
    return pin_path(datapath_dir, map_info(m).name);
}

std::string tc_prog_pin(const std::string& datapath_dir) {
    return pin_path(datapath_dir, PF_PIN_PROG_TC);
}

std::string xdp_prog_pin(const std::string& datapath_dir) {
    return pin_path(datapath_dir, PF_PIN_PROG_XDP);
}

std::string attachments_dir(const std::string& bpffs_root) {
    return podfence_dir(bpffs_root) + "/attachments";
}

std::string attachment_dir(const std::string& bpffs_root, const std::string& container_id,
                           const std::string& ifname) {
    // IDs of the usual shape (hex, dashes) are kept readable; anything else
    // becomes "~" + hash: '~' cannot start a plain id, so no clash. '.' is
    // not "usual": bpffs refuses names containing it.
    std::string id;
    if (id_is_plain(container_id)) {
        id = container_id;
    } else {
        id = "~"; // appended, not "~" + hex: a false -Wrestrict of GCC 12 at -O3
        id += detail::hex16(detail::fnv1a64(container_id.data(), container_id.size()));
    }
    return pin_path(attachments_dir(bpffs_root), id + "_" + escape_ifname(ifname));
}

std::string record_pin(const std::string& attachment_dir) {
    return pin_path(attachment_dir, "record");
}

std::string record_tmp_pin(const std::string& attachment_dir) {
    return pin_path(attachment_dir, "record-new");
}

std::string mirror_dir(const std::string& bpffs_root) {
    std::string name = bpffs_root;
    for (char& c : name)
        if (c == '/') c = '_';
    return "/run/podfence/" + name;
}

std::string backup_bpffs(const std::string& bpffs_root) {
    return mirror_dir(bpffs_root) + "/bpffs";
}

std::string backup_pin(const std::string& bpffs_root, const std::string& datapath_name, Map m) {
    return backup_bpffs(bpffs_root) + "/" + datapath_name + "_" + map_info(m).name;
}

std::string record_mirror(const std::string& bpffs_root, const std::string& attachment_dir) {
    const auto slash = attachment_dir.find_last_of('/');
    return mirror_dir(bpffs_root) + "/" + attachment_dir.substr(slash == std::string::npos ? 0 : slash + 1) +
           ".json";
}

} // namespace podfence::bpf::layout
