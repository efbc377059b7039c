#include "records.hpp"

#include <algorithm>

#include "../common/error.hpp"

namespace podfence::cli {

std::vector<bpf::AttachmentRecord> load_records(const Args& a, const std::optional<std::string>& prefix) {
    if (!bpf::is_bpffs(a.bpffs_root))
        throw Error(Code::Io,
                    a.bpffs_root + " is not a bpffs: no podfence state there (wrong --bpffs-root?)");
    if (!bpf::has_state(a.bpffs_root)) return {};
    std::vector<bpf::AttachmentRecord> out;
    for (auto& r : bpf::StateStore(a.bpffs_root).list())
        if (!prefix || r.container_id.rfind(*prefix, 0) == 0) out.push_back(std::move(r));
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
