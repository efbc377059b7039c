// What goes to stdout: error JSON and the VERSION reply.
#include <doctest/doctest.h>

#include "cni/output.hpp"
#include "cni/version.hpp"

using namespace podfence;
using namespace podfence::cni;

TEST_CASE("error JSON has the spec's shape") {
    Error e(Code::InvalidConfig, "mode: \"foo\" is not one of tc, xdp", "some details");
    auto j = error_json("0.4.0", e);
    CHECK(j.size() == 4);
    CHECK(j["cniVersion"] == "0.4.0");
    CHECK(j["code"] == 7);
    CHECK(j["code"].is_number_unsigned());
    CHECK(j["msg"] == "mode: \"foo\" is not one of tc, xdp");
    CHECK(j["details"] == "some details");
}

TEST_CASE("error JSON falls back to the plugin's spec version") {
    auto j = error_json("", Error(Code::Decode, "network configuration on stdin is not valid JSON"));
    CHECK(j["cniVersion"] == "1.1.0");
    CHECK(j["code"] == 6);
    CHECK(j["details"] == "");
}

TEST_CASE("podfence's own codes come through") {
    CHECK(error_json("1.0.0", Error(Code::UnsupportedInterface, "x"))["code"] == 105);
    CHECK(error_json("1.0.0", Error(Code::NotReady, "x"))["code"] == 50);
}

TEST_CASE("VERSION reply") {
    auto j = version_json();
    CHECK(j["cniVersion"] == "1.1.0");
    CHECK(j["supportedVersions"] == nlohmann::json::array({"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
    CHECK(j.size() == 2);
}
