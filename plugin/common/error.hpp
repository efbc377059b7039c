// One error type for the whole plugin: carries the CNI error code so main()
// can print the spec's error JSON in one place.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace podfence {

// CNI spec codes (1-99 reserved by the spec) and podfence's own (>= 100),
// one per kind of operation that failed. Documented for operators in
// README.md "Error codes".
enum class Code : unsigned {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3, // the CLI names an attachment that does not exist
    InvalidEnv = 4,
    Io = 5, // files and pins under bpffs (mkdir, open, pin, rename, unlink, mount), records,
            // netlink sockets; and what DEL/GC could not remove
    Decode = 6,
    InvalidConfig = 7,
    TryAgain = 11,              // the node lock was not obtained in time
    NotReady = 50,              // STATUS: plugin not available
    BpfLoad = 100,              // loading or verifying BPF programs failed
    Attach = 101,               // attaching or detaching a program (tcx/XDP link, tc filter) failed
    MapSeed = 102,              // reading or writing a pod's entries in the datapath's maps failed
    CheckMismatch = 103,        // CHECK found state differing from what the pod needs
    InvalidPolicy = 104,        // the podfence.io/policy annotation is malformed
    UnsupportedInterface = 105, // not a veth (ipvlan, macvlan, ...) or not in prevResult
};

class Error : public std::runtime_error {
public:
    Error(Code code, std::string msg, std::string details = {})
        : std::runtime_error(msg), code_(code), details_(std::move(details)) {}
    Code code() const noexcept { return code_; }
    const std::string& details() const noexcept { return details_; }

private:
    Code code_;
    std::string details_;
};

// "call(object) failed: <strerror(err)>"; err is a positive or negative errno.
std::string failed(std::string_view call, std::string_view object, int err);

// The error of a failed system or libbpf call: failed(call, object, err),
// then `hint` (what the operator can do) when given.
Error errno_error(Code code, std::string_view call, std::string_view object, int err,
                  std::string_view hint = {});

// Independent problems one verb found (CHECK's mismatches, what DEL or GC
// could not remove), reported together as one Error.
class Problems {
public:
    void add(std::string problem) { list_.push_back(std::move(problem)); }
    bool empty() const noexcept { return list_.empty(); }
    std::size_t size() const noexcept { return list_.size(); }
    const std::vector<std::string>& list() const noexcept { return list_; }
    // When there is any: throws Error(code, "<context>: <first>[ (+N more)]")
    // with every problem, joined by "; ", as its details.
    void raise(Code code, std::string_view context) const;

private:
    std::vector<std::string> list_;
};

} // namespace podfence
