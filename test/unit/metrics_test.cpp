// The Prometheus text format writer of `podfence metrics`
// (plugin/cli/prometheus.hpp): escaping, HELP/TYPE per family, samples
// grouped under their family, and the mistakes a scraper would reject
// (duplicate series, labels differing within a family) caught at once.
#include <doctest/doctest.h>

#include <stdexcept>

#include "cli/prometheus.hpp"

using namespace podfence::cli;

TEST_CASE("label values escape backslash, double quote and newline") {
    CHECK(prom::escape_label_value("plain-pod_1") == "plain-pod_1");
    CHECK(prom::escape_label_value(R"(a\b)") == R"(a\\b)");
    CHECK(prom::escape_label_value(R"(say "hi")") == R"(say \"hi\")");
    CHECK(prom::escape_label_value("two\nlines") == R"(two\nlines)");
    CHECK(prom::escape_label_value("") == "");
    // UTF-8 passes through untouched
    CHECK(prom::escape_label_value("caf\xc3\xa9") == "caf\xc3\xa9");
}

TEST_CASE("HELP text escapes backslash and newline but not quotes") {
    CHECK(prom::escape_help(R"(rule="default" \ x)") == R"(rule="default" \\ x)");
    CHECK(prom::escape_help("a\nb") == R"(a\nb)");
}

TEST_CASE("metric and label names") {
    CHECK(prom::valid_metric_name("podfence_packets_total"));
    CHECK(prom::valid_metric_name("ns:rule_x"));
    CHECK_FALSE(prom::valid_metric_name("1abc"));
    CHECK_FALSE(prom::valid_metric_name("pod-fence"));
    CHECK_FALSE(prom::valid_metric_name(""));
    CHECK(prom::valid_label_name("container_id"));
    CHECK_FALSE(prom::valid_label_name("a:b"));
    CHECK_FALSE(prom::valid_label_name("__name__"));
    CHECK_FALSE(prom::valid_label_name("9x"));
}

TEST_CASE("families print HELP, TYPE, then their samples, in declaration order") {
    prom::Exposition e;
    e.family("podfence_packets_total", prom::Type::Counter, "Packets.\nSecond line");
    e.family("podfence_conntrack_entries", prom::Type::Gauge, "Entries.");
    e.family("podfence_empty_total", prom::Type::Counter, "No samples yet.");
    // samples added out of family order still print under their family
    e.sample("podfence_conntrack_entries", {}, 7);
    e.sample("podfence_packets_total", {{"pod", "web \"a\""}, {"direction", "ingress"}},
             18446744073709551615u);
    e.sample("podfence_packets_total", {{"pod", "web \"a\""}, {"direction", "egress"}}, 0);
    CHECK(e.text() ==
          "# HELP podfence_packets_total Packets.\\nSecond line\n"
          "# TYPE podfence_packets_total counter\n"
          "podfence_packets_total{pod=\"web \\\"a\\\"\",direction=\"ingress\"} 18446744073709551615\n"
          "podfence_packets_total{pod=\"web \\\"a\\\"\",direction=\"egress\"} 0\n"
          "# HELP podfence_conntrack_entries Entries.\n"
          "# TYPE podfence_conntrack_entries gauge\n"
          "podfence_conntrack_entries 7\n"
          "# HELP podfence_empty_total No samples yet.\n"
          "# TYPE podfence_empty_total counter\n");
}

TEST_CASE("mistakes a scraper would reject throw") {
    prom::Exposition e;
    e.family("podfence_x_total", prom::Type::Counter, "x");
    CHECK_THROWS_AS(e.family("podfence_x_total", prom::Type::Counter, "again"), std::logic_error);
    CHECK_THROWS_AS(e.family("podfence_packets", prom::Type::Counter, "counter without _total"),
                    std::logic_error);
    CHECK_THROWS_AS(e.family("podfence-bad", prom::Type::Gauge, "bad name"), std::logic_error);
    CHECK_THROWS_AS(e.sample("podfence_undeclared", {}, 1), std::logic_error);

    e.sample("podfence_x_total", {{"pod", "a"}, {"direction", "ingress"}}, 1);
    SUBCASE("the same series twice") {
        CHECK_THROWS_AS(e.sample("podfence_x_total", {{"pod", "a"}, {"direction", "ingress"}}, 2),
                        std::logic_error);
    }
    SUBCASE("other label names in the same family") {
        CHECK_THROWS_AS(e.sample("podfence_x_total", {{"pod", "a"}}, 2), std::logic_error);
        CHECK_THROWS_AS(e.sample("podfence_x_total", {{"direction", "ingress"}, {"pod", "b"}}, 2),
                        std::logic_error);
    }
    SUBCASE("an invalid or repeated label name") {
        prom::Exposition f;
        f.family("podfence_y", prom::Type::Gauge, "y");
        CHECK_THROWS_AS(f.sample("podfence_y", {{"bad-name", "v"}}, 1), std::logic_error);
        CHECK_THROWS_AS(f.sample("podfence_y", {{"a", "1"}, {"a", "2"}}, 1), std::logic_error);
    }
    SUBCASE("values differing only by escaping are different series") {
        e.sample("podfence_x_total", {{"pod", "a\""}, {"direction", "ingress"}}, 3);
        CHECK(e.text().find("podfence_x_total{pod=\"a\\\"\",direction=\"ingress\"} 3\n") !=
              std::string::npos);
    }
}
