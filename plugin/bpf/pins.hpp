// Pinning BPF objects in bpffs (paths: layout.hpp).
#pragma once

#include <string>

#include "../common/fd.hpp"

namespace podfence::bpf {

// pin() throws Error(Code::Io); obj_get() returns an empty fd when the path
// does not exist and throws on other errors.
void pin(int fd, const std::string& path);
UniqueFd obj_get(const std::string& path);

} // namespace podfence::bpf
