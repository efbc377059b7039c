// Internal: libbpf's messages go to podfence's log at debug level; while a
// LibbpfCapture is alive they are also kept so a load failure can quote the
// verifier's last lines in the Error.
#pragma once

#include <string>

namespace podfence::bpf::detail {

void route_libbpf_logs(); // idempotent

class LibbpfCapture {
public:
    LibbpfCapture();
    ~LibbpfCapture();
    LibbpfCapture(const LibbpfCapture&) = delete;
    LibbpfCapture& operator=(const LibbpfCapture&) = delete;
    std::string tail(std::size_t max_chars) const;
    const std::string& all() const;
};

} // namespace podfence::bpf::detail
