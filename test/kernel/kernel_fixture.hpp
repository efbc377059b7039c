// Throwaway kernel objects for the kernel tests: a private bpffs, netns and
// veth pairs, all named pftk-* and removed by their destructors (so also when
// an assertion fails). Requires root.
#pragma once

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "bpf/layout.hpp"

namespace pftk {

inline int sh(const std::string& cmd) {
    int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

inline void must(const std::string& cmd) {
    if (sh(cmd) != 0) throw std::runtime_error("test setup failed: " + cmd);
}

inline std::string capture(const std::string& cmd) {
    std::string out;
    if (FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p))
            out += buf;
        ::pclose(p);
    }
    return out;
}

// A fresh temp directory; mounted as its own bpffs instance unless told not to.
class TempBpffs {
public:
    explicit TempBpffs(bool mount_now = true) {
        char tmpl[] = "/tmp/pftk-bpffs-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
        if (mount_now && ::mount("bpf", path_.c_str(), "bpf", 0, "mode=0700") != 0)
            throw std::runtime_error("mount -t bpf " + path_ + " failed");
    }
    ~TempBpffs() {
        // Unmounting drops every pin in the instance (links detach, maps free).
        while (::umount2(path_.c_str(), MNT_DETACH) == 0) {
        }
        ::rmdir(path_.c_str());
        // and the record copies and backup pins podfence keeps for repairs
        const std::string backup = podfence::bpf::layout::backup_bpffs(path_);
        while (::umount2(backup.c_str(), MNT_DETACH) == 0) {
        }
        std::error_code ec;
        std::filesystem::remove_all(podfence::bpf::layout::mirror_dir(path_), ec);
    }
    TempBpffs(const TempBpffs&) = delete;
    TempBpffs& operator=(const TempBpffs&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

class Netns {
public:
    explicit Netns(std::string name) : name_(std::move(name)) {
        sh("ip netns del " + name_);
        must("ip netns add " + name_);
        must("ip -n " + name_ + " link set lo up");
    }
    ~Netns() { sh("ip netns del " + name_); }
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;
    const std::string& name() const { return name_; }
    std::string path() const { return "/run/netns/" + name_; }

private:
    std::string name_;
};

// veth `a` in a_ns (or the host if empty) with peer `b` in b_ns (or host).
// ipv6 false: both ends without IPv6, set before they come up, so that the
// kernel's own link-local traffic (DAD, MLD reports, router solicitations)
// never reaches a program or counter a test reads.
class Veth {
public:
    Veth(std::string a, std::string b, const std::string& a_ns = {}, const std::string& b_ns = {},
         bool ipv6 = true)
        : a_(std::move(a)), a_ns_(a_ns) {
        del();
        must("ip link add " + a_ + " type veth peer name " + b + (b_ns.empty() ? "" : " netns " + b_ns));
        if (!a_ns.empty()) must("ip link set " + a_ + " netns " + a_ns);
        if (!ipv6) {
            auto in = [](const std::string& ns) {
                return ns.empty() ? std::string() : "ip netns exec " + ns + " ";
            };
            must(in(a_ns) + "sysctl -qw net.ipv6.conf." + a_ + ".disable_ipv6=1");
            must(in(b_ns) + "sysctl -qw net.ipv6.conf." + b + ".disable_ipv6=1");
        }
        must(ip_a() + "link set " + a_ + " up");
        must((b_ns.empty() ? std::string("ip ") : "ip -n " + b_ns + " ") + "link set " + b + " up");
    }
    ~Veth() { del(); }
    Veth(const Veth&) = delete;
    Veth& operator=(const Veth&) = delete;

private:
    std::string ip_a() const { return a_ns_.empty() ? "ip " : "ip -n " + a_ns_ + " "; }
    void del() { sh(ip_a() + "link del " + a_); }
    std::string a_, a_ns_;
};

} // namespace pftk
