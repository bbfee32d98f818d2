#include "loader/admission_queue.h"

#include <algorithm>

#include "cache/check.h"

namespace genomed::loader {

std::vector<TicketPtr> AdmissionQueue::submit(TicketPtr ticket) {
  GENOMED_CHECK(ticket->outcome == AdmissionTicket::Outcome::waiting, "a ticket submitted twice");
  queue_.push_back(std::move(ticket));
  return pump();
}

std::vector<TicketPtr> AdmissionQueue::withdraw(const TicketPtr& ticket) {
  const bool was_head = !queue_.empty() && queue_.front() == ticket;
  std::erase(queue_, ticket);
  if (!was_head) return {};
  head_blocked_by_.clear();
  return pump();  // the next one may fit where the withdrawn head did not
}

std::vector<TicketPtr> AdmissionQueue::pump() {
  std::vector<TicketPtr> done;
  while (!queue_.empty() && try_head(&done)) {
  }
  // Now the head (if any) has a pending claim that does not fit. A later
  // ticket none of whose claims is pending any more (each got its range
  // through an earlier ticket, or its load ended) needs no room: like a cache
  // hit it takes nothing from the head, so it is served where it stands.
  // Left waiting, its request would be refused no_space for an adapter that
  // is already loaded, or lose an adapter it keeps to the head and load it a
  // second time.
  for (auto it = queue_.begin(); it != queue_.end();) {
    const auto& claims = (*it)->claims;
    if (std::any_of(claims.begin(), claims.end(), [](const auto& c) { return c->pending(); })) {
      ++it;
      continue;
    }
    (*it)->outcome = AdmissionTicket::Outcome::served;
    done.push_back(*it);
    it = queue_.erase(it);
  }
  return done;
}

std::vector<TicketPtr> AdmissionQueue::unavailable(const std::string& name) {
  std::vector<TicketPtr> done;
  mark_stale_keeping({name}, &done);
  auto more = pump();
  done.insert(done.end(), more.begin(), more.end());
  return done;
}

void AdmissionQueue::check_invariants() const {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    GENOMED_CHECK((*it)->outcome == AdmissionTicket::Outcome::waiting,
                  "a queued ticket that is not waiting");
    GENOMED_CHECK(std::find(it + 1, queue_.end(), *it) == queue_.end(), "a ticket queued twice");
  }
}

std::size_t AdmissionQueue::position(const TicketPtr& ticket) const {
  return static_cast<std::size_t>(std::find(queue_.begin(), queue_.end(), ticket) - queue_.begin());
}

bool AdmissionQueue::try_head(std::vector<TicketPtr>* done) {
  TicketPtr head = queue_.front();
  std::vector<std::shared_ptr<RangeClaim>> pending;
  std::vector<std::uint64_t> lengths;
  for (const auto& claim : head->claims) {
    if (claim->pending() && std::find(pending.begin(), pending.end(), claim) == pending.end()) {
      pending.push_back(claim);
      lengths.push_back(claim->length);
    }
  }
  if (!lengths.empty()) {
    // What the head keeps, and what every ticket served earlier in this pump
    // keeps: the coordinator leases those only when it settles the tickets
    // this pump returns, so until then they are resident, unleased and
    // would otherwise be evictable by this head (found by genome-stress:
    // a batch acquire aborted the daemon granting a lease on an adapter a
    // later ticket of the same pump had evicted).
    std::vector<std::string> keep = head->keep;
    for (const TicketPtr& served : *done) {
      if (served->outcome == AdmissionTicket::Outcome::served)
        keep.insert(keep.end(), served->keep.begin(), served->keep.end());
    }
    auto reserved = cache_.reserve_all(lengths, keep, head->may_evict);
    if (!reserved.ok() && reserved.code() == Errc::no_space) {
      head_blocked_by_ = reserved.status().message();
      return false;  // strict FIFO: nobody passes the head
    }
    if (!reserved.ok()) {
      head->outcome = AdmissionTicket::Outcome::failed;
      head->error = reserved.status();
    } else {
      for (std::size_t i = 0; i < pending.size(); ++i) pending[i]->range = reserved->ranges[i];
      head->evicted = std::move(reserved->evicted);
      head->outcome = AdmissionTicket::Outcome::served;
    }
  } else {
    head->outcome = AdmissionTicket::Outcome::served;
  }
  queue_.pop_front();
  head_blocked_by_.clear();
  done->push_back(head);
  if (!head->evicted.empty()) mark_stale_keeping(head->evicted, done);
  return true;
}

void AdmissionQueue::mark_stale_keeping(const std::vector<std::string>& names,
                                        std::vector<TicketPtr>* done) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    const auto& keep = (*it)->keep;
    const bool hit = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      return std::find(keep.begin(), keep.end(), n) != keep.end();
    });
    if (!hit) {
      ++it;
      continue;
    }
    if (it == queue_.begin()) head_blocked_by_.clear();
    (*it)->outcome = AdmissionTicket::Outcome::stale;
    done->push_back(*it);
    it = queue_.erase(it);
  }
}

}  // namespace genomed::loader
