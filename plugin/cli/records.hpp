// Helpers the CLI commands share: finding attachments and their datapaths.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../bpf/datapath.hpp"
#include "../bpf/state.hpp"
#include "cli.hpp"

namespace podfence::cli {

// A pod as the operator names it: "namespace/name" (the K8S_POD_* CNI_ARGS
// the record keeps), or a container ID or a prefix of one.
bool matches_pod(const bpf::AttachmentRecord& r, const std::string& selector);
// "namespace/name" or "" when the record has no Kubernetes identity.
std::string pod_name(const bpf::AttachmentRecord& r);

// Records matching `selector` (all if nullopt), sorted by container and
// ifname. Throws Error(Io) when --bpffs-root is not a bpffs (the usual
// mistake); empty when podfence never ran there.
std::vector<bpf::AttachmentRecord> load_records(const Args& a, const std::optional<std::string>& selector);

// The one attachment `selector` names (and `ifname`, when given). Throws
// Error(UnknownContainer) when none matches and Error(InvalidConfig) listing
// the candidates when several do.
bpf::AttachmentRecord find_one(const Args& a, const std::string& selector,
                               const std::optional<std::string>& ifname = std::nullopt);

// Nanoseconds since the epoch as RFC 3339 UTC with nine fraction digits,
// "2026-12-02T05:46:17.000000042Z" (events' timestamps).
std::string rfc3339_nanos(std::int64_t unix_ns);

// Opens each datapath directory once.
class DatapathCache {
public:
    const bpf::Datapath& get(const std::string& dir);

private:
    std::map<std::string, std::unique_ptr<bpf::Datapath>> open_;
};

} // namespace podfence::cli
