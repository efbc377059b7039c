#include "records.hpp"

#include <algorithm>

#include "../common/error.hpp"

namespace podfence::cli {

bool matches_pod(const bpf::AttachmentRecord& r, const std::string& selector) {
    if (selector.find('/') != std::string::npos) return pod_name(r) == selector;
    return !selector.empty() && r.container_id.rfind(selector, 0) == 0;
}

std::string pod_name(const bpf::AttachmentRecord& r) {
    return r.pod_namespace.empty() || r.pod_name.empty() ? std::string() : r.pod_namespace + "/" + r.pod_name;
}

bpf::AttachmentRecord find_one(const Args& a, const std::string& selector,
                               const std::optional<std::string>& ifname) {
    std::vector<bpf::AttachmentRecord> found;
    for (auto& r : load_records(a, selector))
        if (!ifname || r.ifname == *ifname) found.push_back(std::move(r));
    const std::string what = "\"" + selector + "\"" + (ifname ? " ifname " + *ifname : "");
    if (found.empty())
        throw Error(Code::UnknownContainer, "no attachment matches " + what +
                                                " (see podfence inspect: a pod is namespace/name, a "
                                                "container ID or a prefix of one)");
    if (found.size() > 1) {
        std::string list;
        for (const auto& r : found)
            list += "\n  " + r.container_id + " " + r.ifname +
                    (pod_name(r).empty() ? "" : " (" + pod_name(r) + ")");
        throw Error(Code::InvalidConfig,
                    what + " matches " + std::to_string(found.size()) +
                        " attachments; name one (longer container ID prefix, or the ifname):" + list);
    }
    return std::move(found.front());
}

std::vector<bpf::AttachmentRecord> load_records(const Args& a, const std::optional<std::string>& selector) {
    if (!bpf::is_bpffs(a.bpffs_root))
        throw Error(Code::Io,
                    a.bpffs_root + " is not a bpffs: no podfence state there (wrong --bpffs-root?)");
    if (!bpf::has_state(a.bpffs_root)) return {};
    std::vector<bpf::AttachmentRecord> out;
    for (auto& r : bpf::StateStore(a.bpffs_root).list())
        if (!selector || matches_pod(r, *selector)) out.push_back(std::move(r));
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
        return std::tie(x.container_id, x.ifname) < std::tie(y.container_id, y.ifname);
    });
    return out;
}

const bpf::Datapath& DatapathCache::get(const std::string& dir) {
    auto& slot = open_[dir];
    if (!slot) slot = std::make_unique<bpf::Datapath>(bpf::Datapath::open_dir(dir));
    return *slot;
}

} // namespace podfence::cli
