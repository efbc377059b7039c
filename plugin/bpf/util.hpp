// Internal helpers of bpf/: hashing, bpffs directory walking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace podfence::bpf::detail {

// FNV-1a; pass a previous result as `h` to hash a concatenation piece by piece.
std::uint64_t fnv1a64(const void* data, std::size_t len, std::uint64_t h = 0xcbf29ce484222325ull);
std::string hex16(std::uint64_t v);

// Entry names in a directory (no "." / ".."); empty if it does not exist.
std::vector<std::string> list_dir(const std::string& dir);
// Unlinks every entry of `dir` (pins; bpffs dirs we create hold no subdirs) and
// removes it. No error if absent; throws Error(Io) otherwise.
void remove_pin_dir(const std::string& dir);
bool exists(const std::string& path);
void mkdir_p(const std::string& path); // throws Error(Io)

} // namespace podfence::bpf::detail
