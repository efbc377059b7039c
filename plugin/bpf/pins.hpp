// Pinning BPF objects in bpffs (paths: layout.hpp).
#pragma once

#include <string>

#include "../common/fd.hpp"

namespace podfence::bpf {

// pin() throws Error(Code::Io); obj_get() returns an empty fd when the path
// does not exist and throws on other errors.
void pin(int fd, const std::string& path);
UniqueFd obj_get(const std::string& path);
// Detaches the bpf_link pinned at `path` now (BPF_LINK_DETACH). Unpinning
// alone detaches it only when the kernel frees the link, from a work queue,
// which can be after DEL returned and the slot was reused. No error if
// absent; throws Error(Code::Attach) if the detach fails.
void detach_link(const std::string& path);

} // namespace podfence::bpf
