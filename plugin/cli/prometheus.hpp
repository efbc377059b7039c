// The Prometheus text exposition format (version 0.0.4), as much of it as
// `podfence metrics` needs: counter and gauge families of integer samples.
// Families print in the order they were declared, each with its HELP and
// TYPE lines and then its samples, so the output is stable scrape to scrape.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podfence::cli::prom {

// Label values and HELP text are escaped as the format requires: `\` and
// newline in both, `"` in label values only.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);

// [a-zA-Z_:][a-zA-Z0-9_:]* (metrics) and [a-zA-Z_][a-zA-Z0-9_]* (labels,
// not starting with the reserved "__").
bool valid_metric_name(std::string_view n);
bool valid_label_name(std::string_view n);

enum class Type { Counter, Gauge };

using Labels = std::vector<std::pair<std::string, std::string>>;

class Exposition {
public:
    // Declares a family. Throws std::logic_error on an invalid or repeated
    // name, or a counter not named *_total (the convention promtool checks).
    void family(const std::string& name, Type type, const std::string& help);
    // Adds a sample to a declared family. Every sample of a family carries
    // the same label names in the same order (node_exporter rejects a family
    // whose samples differ). Throws std::logic_error on an undeclared family,
    // other label names, or a series already added (same label values).
    void sample(const std::string& name, const Labels& labels, std::uint64_t value);
    std::string text() const;

private:
    struct Family {
        std::string name, help;
        Type type;
        std::vector<std::string> label_names;
        bool labels_fixed = false;
        std::set<std::string> series; // rendered "{...}" parts, to find duplicates
        std::string lines;
    };
    Family& find(const std::string& name);
    std::vector<Family> families_;
};

} // namespace podfence::cli::prom
