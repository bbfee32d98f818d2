#include "loader/request_path.h"

#include <algorithm>

#include "cache/check.h"

namespace genomed::loader {

bool Request::holds(const std::string& name) const {
  return std::any_of(leases.begin(), leases.end(), [&](const auto& l) { return l.first == name; });
}

void Requests::give_ticket(Request& req, TicketPtr ticket) {
  ticket_owner_[ticket.get()] = &req;
  req.ticket = std::move(ticket);
}

void Requests::drop_ticket(Request& req) {
  ticket_owner_.erase(req.ticket.get());
  req.ticket.reset();
}

Request* Requests::owner_of(const AdmissionTicket* ticket) const {
  const auto it = ticket_owner_.find(ticket);
  return it == ticket_owner_.end() ? nullptr : it->second;
}

void Requests::wake_all() const {
  for (Request* r : requests_) r->cv.notify_all();
}

void Requests::wake(ConnectionId conn) const {
  for (Request* r : requests_) {
    if (r->conn == conn) r->cv.notify_all();
  }
}

void Requests::check_invariants() const {
  for (const auto& [ticket, owner] : ticket_owner_) {
    GENOMED_CHECK(requests_.contains(owner) && owner->ticket.get() == ticket,
                  "a ticket owned by a request that does not hold it");
  }
  for (const Request* r : requests_) {
    GENOMED_CHECK(r->admitted || r->leases.empty(), "a request holds leases before admission");
  }
}

}  // namespace genomed::loader
