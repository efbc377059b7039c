// Internal to netlink/: one rtnetlink socket and the single round-trip that
// every request goes through, so ACK and NLMSG_ERROR are handled in one place.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace podfence::netlink::detail {

// A request being built: header plus attributes, in a buffer it owns.
class Request {
public:
    Request(std::uint16_t type, std::uint16_t flags);
    nlmsghdr* hdr() { return hdr_; }
    template <typename T> T* put_extra() {
        return static_cast<T*>(mnl_nlmsg_put_extra_header(hdr_, sizeof(T)));
    }

private:
    std::vector<char> buf_;
    nlmsghdr* hdr_;
};

// Attribute walks with typed callbacks (libmnl's iteration macros assign
// void* and do not compile as C++).
using AttrFn = std::function<void(const nlattr*)>;
void for_each_attr(const nlmsghdr* nlh, unsigned offset, const AttrFn& fn);
void for_each_nested(const nlattr* nest, const AttrFn& fn);

// Called for every reply message of a dump or a GET.
using MsgFn = std::function<void(const nlmsghdr*)>;

class Rtnl {
public:
    Rtnl(); // opens NETLINK_ROUTE in the current netns; throws Error(Io)
    // Sends `req` and reads until the ACK (or NLMSG_DONE for dumps). Returns 0
    // or the positive errno the kernel answered; socket failures throw.
    // `what` names the request in error messages.
    int roundtrip(Request& req, const MsgFn& on_msg, const std::string& what);

private:
    struct Closer {
        void operator()(mnl_socket* s) const { mnl_socket_close(s); }
    };
    std::unique_ptr<mnl_socket, Closer> sock_;
    std::uint32_t portid_ = 0;
    std::uint32_t seq_ = 0;
};

} // namespace podfence::netlink::detail
