#include "rtnl.hpp"

#include <cerrno>
#include <ctime>

#include "common/error.hpp"

namespace podfence::netlink::detail {

Request::Request(std::uint16_t type, std::uint16_t flags) : buf_(MNL_SOCKET_BUFFER_SIZE) {
    hdr_ = mnl_nlmsg_put_header(buf_.data());
    hdr_->nlmsg_type = type;
    hdr_->nlmsg_flags = NLM_F_REQUEST | flags;
}

Rtnl::Rtnl() : sock_(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC)) {
    if (!sock_) throw errno_error(Code::Io, "mnl_socket_open", "NETLINK_ROUTE", errno);
    if (mnl_socket_bind(sock_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
        throw errno_error(Code::Io, "mnl_socket_bind", "NETLINK_ROUTE", errno);
    portid_ = mnl_socket_get_portid(sock_.get());
    // Strict checking makes the kernel honour dump filters (ifindex, parent)
    // and reject malformed requests instead of ignoring them. Best effort.
    int one = 1;
    (void)mnl_socket_setsockopt(sock_.get(), NETLINK_GET_STRICT_CHK, &one, sizeof one);
    int ext_ack = 1;
    (void)mnl_socket_setsockopt(sock_.get(), NETLINK_EXT_ACK, &ext_ack, sizeof ext_ack);
    seq_ = static_cast<std::uint32_t>(std::time(nullptr));
}

namespace {

int attr_cb(const nlattr* a, void* data) {
    (*static_cast<const AttrFn*>(data))(a);
    return MNL_CB_OK;
}

int data_cb(const nlmsghdr* nlh, void* data) {
    (*static_cast<const MsgFn*>(data))(nlh);
    return MNL_CB_OK;
}

} // namespace

void for_each_attr(const nlmsghdr* nlh, unsigned offset, const AttrFn& fn) {
    mnl_attr_parse(nlh, offset, attr_cb, const_cast<AttrFn*>(&fn));
}

void for_each_nested(const nlattr* nest, const AttrFn& fn) {
    mnl_attr_parse_nested(nest, attr_cb, const_cast<AttrFn*>(&fn));
}

int Rtnl::roundtrip(Request& req, const MsgFn& on_msg, const std::string& what) {
    nlmsghdr* nlh = req.hdr();
    // Always ask for an ACK so a successful NEW/DEL is distinguishable from a
    // lost message; dumps end with NLMSG_DONE instead.
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = ++seq_;
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0)
        throw errno_error(Code::Io, "netlink send", what, errno);

    // Large enough for any dump message the kernel builds (it sizes dump skbs
    // from the reader's buffer, at most 32 KiB by default).
    std::vector<char> buf(32768);
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw errno_error(Code::Io, "netlink receive", what, errno);
        }
        // mnl_cb_run returns MNL_CB_STOP on NLMSG_DONE or the final ACK, and
        // -1 with errno set from NLMSG_ERROR.
        int ret = mnl_cb_run(buf.data(), static_cast<size_t>(n), nlh->nlmsg_seq, portid_, data_cb,
                             const_cast<MsgFn*>(&on_msg));
        if (ret == MNL_CB_STOP) return 0;
        if (ret < 0) return errno ? errno : EIO;
    }
}

} // namespace podfence::netlink::detail
