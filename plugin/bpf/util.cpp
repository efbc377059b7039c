#include "util.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <bpf/bpf.h>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace podfence::bpf::detail {

std::uint64_t fnv1a64(const void* data, std::size_t len, std::uint64_t h) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < len; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string hex16(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) {
        if (errno == ENOENT) return out;
        throw errno_error(Code::Io, "opendir", dir, errno);
    }
    while (const dirent* e = ::readdir(d.get())) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(std::move(n));
    }
    return out;
}

void remove_pin_dir(const std::string& dir) {
    for (const auto& n : list_dir(dir)) {
        std::string p = dir + "/" + n;
        if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw errno_error(Code::Io, "unlink", p, errno);
    }
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) throw errno_error(Code::Io, "rmdir", dir, errno);
}

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

void mkdir_p(const std::string& path) {
    for (std::size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos != path.size() && path[pos] != '/') continue;
        std::string part = path.substr(0, pos);
        if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
            throw errno_error(Code::Io, "mkdir", part, errno);
    }
}

} // namespace podfence::bpf::detail
