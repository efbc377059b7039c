#include "log.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace podfence::log {
namespace {

struct Sink {
    std::FILE* file = stderr;
    Level min = Level::Info;
    ~Sink() {
        if (file != stderr) std::fclose(file);
    }
};

Sink& sink() {
    static Sink s;
    return s;
}

const char* name(Level l) {
    switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
    }
    return "?";
}

} // namespace

void open(const std::string& path, Level min_level) {
    Sink& s = sink();
    s.min = min_level;
    if (path.empty()) return;
    std::FILE* f = std::fopen(path.c_str(), "ae");
    if (!f) return; // keep logging to stderr rather than fail the verb over a log file
    if (s.file != stderr) std::fclose(s.file);
    s.file = f;
}

void write(Level level, std::string_view msg) {
    Sink& s = sink();
    if (level < s.min) return;
    std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char ts[32];
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    std::fprintf(s.file, "%s podfence[%d] %s: %.*s\n", ts, static_cast<int>(::getpid()), name(level),
                 static_cast<int>(msg.size()), msg.data());
    std::fflush(s.file);
}

} // namespace podfence::log
