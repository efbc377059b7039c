// Enter a network namespace for the lifetime of a scope (the calling thread
// only; the plugin is single threaded). Only the network namespace: the mount
// namespace, and so bpffs, stay the host's.
#pragma once

#include <string>

#include "../common/fd.hpp"

namespace podfence::netlink {

class NetnsGuard {
public:
    // Throws Error(Code::InvalidEnv or Io) naming the path if it cannot be entered.
    explicit NetnsGuard(const std::string& netns_path);
    ~NetnsGuard();
    NetnsGuard(const NetnsGuard&) = delete;
    NetnsGuard& operator=(const NetnsGuard&) = delete;

private:
    UniqueFd original_;
};

} // namespace podfence::netlink
