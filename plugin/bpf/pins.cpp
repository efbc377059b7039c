#include "pins.hpp"

#include <bpf/bpf.h>

#include <cerrno>

#include "common/error.hpp"
#include "util.hpp"

namespace podfence::bpf {

void pin(int fd, const std::string& path) {
    if (bpf_obj_pin(fd, path.c_str()) != 0) throw errno_error(Code::Io, "bpf_obj_pin", path, errno);
}

UniqueFd obj_get(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
        if (errno == ENOENT) return UniqueFd();
        throw errno_error(Code::Io, "bpf_obj_get", path, errno);
    }
    return UniqueFd(fd);
}

void detach_link(const std::string& path) {
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd) {
        if (errno == ENOENT) return;
        throw errno_error(Code::Io, "bpf_obj_get", path, errno);
    }
    // ENOLINK: already detached (device gone); EOPNOTSUPP: link type without
    // detach, the unpin then does it.
    if (bpf_link_detach(fd.get()) != 0 && errno != ENOLINK && errno != EOPNOTSUPP)
        throw errno_error(Code::Attach, "bpf_link_detach", path, errno);
}

} // namespace podfence::bpf
