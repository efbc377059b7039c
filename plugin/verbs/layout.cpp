#include "layout.hpp"

namespace podfence::verbs {

std::string podfence_dir(const std::string& bpffs_root) {
    return bpffs_root + "/podfence";
}

std::string attachment_dir(const bpf::StateStore& store, const std::string& bpffs_root,
                           const std::string& container_id, const std::string& ifname) {
    std::string d = store.dir_for(container_id, ifname);
    // dir_for may give a bare name or a full path: accept both.
    if (!d.empty() && d[0] == '/') return d;
    return podfence_dir(bpffs_root) + "/attachments/" + d;
}

} // namespace podfence::verbs
