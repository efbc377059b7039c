// One error type for the whole plugin: carries the CNI error code so main()
// can print the spec's error JSON in one place.
#pragma once

#include <stdexcept>
#include <string>

namespace podfence {

// CNI spec codes (1-99 reserved by the spec) and podfence's own (>= 100).
// Documented for operators in README.md "Error codes".
enum class Code : unsigned {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnv = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgain = 11,
    NotReady = 50,              // STATUS: plugin not available
    BpfLoad = 100,              // loading or pinning the datapath failed
    Attach = 101,               // attaching a program to an interface failed
    MapSeed = 102,              // writing a pod's policy or state to maps failed
    CheckMismatch = 103,        // CHECK found state differing from what the pod needs
    InvalidPolicy = 104,        // the podfence.io/policy annotation is malformed
    UnsupportedInterface = 105, // not a veth (ipvlan, macvlan, ...) or not in prevResult
};

class Error : public std::runtime_error {
public:
    Error(Code code, std::string msg, std::string details = {})
        : std::runtime_error(std::move(msg)), code_(code), details_(std::move(details)) {}
    Code code() const noexcept { return code_; }
    const std::string& details() const noexcept { return details_; }

private:
    Code code_;
    std::string details_;
};

} // namespace podfence
