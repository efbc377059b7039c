// Helpers the CLI commands share: finding attachments and their datapaths.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../bpf/datapath.hpp"
#include "../bpf/state.hpp"
#include "cli.hpp"

namespace podfence::cli {

// Records whose containerID equals or starts with `prefix` (all if nullopt),
// sorted by container and ifname. Throws Error(Io) when --bpffs-root is not
// a bpffs (the usual mistake); empty when podfence never ran there.
std::vector<bpf::AttachmentRecord> load_records(const Args& a, const std::optional<std::string>& prefix);

// Opens each datapath directory once.
class DatapathCache {
public:
    const bpf::Datapath& get(const std::string& dir);

private:
    std::map<std::string, std::unique_ptr<bpf::Datapath>> open_;
};

} // namespace podfence::cli
