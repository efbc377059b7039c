#include "netns.hpp"

#include <fcntl.h>
#include <sched.h>

#include <cerrno>

#include "common/error.hpp"
#include "common/log.hpp"

namespace podfence::netlink {

NetnsGuard::NetnsGuard(const std::string& netns_path)
    : original_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (!original_) throw errno_error(Code::Io, "open", "/proc/thread-self/ns/net", errno);
    UniqueFd target(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!target) {
        int e = errno;
        // A missing netns is the runtime's input being wrong, not our I/O.
        throw errno_error(e == ENOENT ? Code::InvalidEnv : Code::Io, "open", netns_path, e,
                          "CNI_NETNS not usable");
    }
    if (::setns(target.get(), CLONE_NEWNET) != 0) {
        int e = errno;
        throw errno_error(e == EINVAL ? Code::InvalidEnv : Code::Io, "setns", netns_path + ", CLONE_NEWNET",
                          e, e == EINVAL ? "not a network namespace" : "");
    }
}

NetnsGuard::~NetnsGuard() {
    // Cannot throw from a destructor; staying in the pod's netns would make
    // every later host-side call wrong, so make it loud.
    if (::setns(original_.get(), CLONE_NEWNET) != 0)
        log::error(failed("setns", "original network namespace", errno));
}

} // namespace podfence::netlink
