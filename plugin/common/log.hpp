// Logging goes to the netconf's logFile or stderr, never stdout: libcni reads
// the result (or the error JSON) from stdout.
#pragma once

#include <string>
#include <string_view>

namespace podfence::log {

enum class Level { Debug, Info, Warn, Error };

// Empty path = stderr. Safe to call more than once (the last call wins).
void open(const std::string& path, Level min_level = Level::Info);
void write(Level level, std::string_view msg);

inline void debug(std::string_view m) {
    write(Level::Debug, m);
}
inline void info(std::string_view m) {
    write(Level::Info, m);
}
inline void warn(std::string_view m) {
    write(Level::Warn, m);
}
inline void error(std::string_view m) {
    write(Level::Error, m);
}

} // namespace podfence::log
