#include "libbpf_log.hpp"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <vector>

#include "common/log.hpp"

namespace podfence::bpf::detail {
namespace {

// The plugin is single threaded; a capture is active only around a load.
bool g_capturing = false;
std::string g_captured;

int print_fn(enum libbpf_print_level, const char* fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int n = std::vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    if (n <= 0) return 0;
    std::vector<char> buf(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(buf.data(), buf.size(), fmt, args);
    std::string msg(buf.data(), static_cast<std::size_t>(n));
    if (g_capturing) g_captured += msg;
    while (!msg.empty() && msg.back() == '\n')
        msg.pop_back();
    log::debug("libbpf: " + msg);
    return n;
}

} // namespace

void route_libbpf_logs() {
    libbpf_set_print(print_fn);
}

LibbpfCapture::LibbpfCapture() {
    route_libbpf_logs();
    g_captured.clear();
    g_capturing = true;
}

LibbpfCapture::~LibbpfCapture() {
    g_capturing = false;
}

std::string LibbpfCapture::tail(std::size_t max_chars) const {
    if (g_captured.size() <= max_chars) return g_captured;
    return "..." + g_captured.substr(g_captured.size() - max_chars);
}

const std::string& LibbpfCapture::all() const {
    return g_captured;
}

} // namespace podfence::bpf::detail
