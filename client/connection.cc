#include "client/connection.h"

#include <sys/mman.h>

namespace genomed::client_detail {

Connection::Connection(const ClientOptions& options, std::unique_ptr<Transport> transport)
    : options(options), transport(std::move(transport)) {}

Connection::~Connection() {
  if (arena != nullptr) ::munmap(const_cast<std::byte*>(arena), arena_bytes);
  // slots unmaps its page, transport closes the socket.
}

void Connection::release(std::uint64_t lease) {
  ipc::Request req;
  req.op = ipc::Op::release;
  req.leases = {lease};
  transport->send(req);
}

void Connection::give_back(std::uint32_t index, std::uint32_t tag, std::uint64_t lease) {
  if (foreign()) return;  // the page is shared with the parent: its counts are the parent's
  if (slots->give_back(index, tag)) release(lease);
}

}  // namespace genomed::client_detail
