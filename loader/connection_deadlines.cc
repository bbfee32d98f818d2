// The connection's limits in time and its idleness (loader/connection.h):
// the handshake, write and idle timeouts the server's timer checks
// (on_deadline), and closing an idle connection that holds no lease to make
// room for a new client (idle, evict). Members of Connection, under its mu_
// like the rest; the coordinator is asked whether leases are held without it.
#include <sys/socket.h>

#include <algorithm>

#include "ipc/protocol.h"
#include "loader/client_log.h"
#include "loader/connection.h"
#include "loader/handshake.h"

namespace genomed::loader {
namespace {
using ipc::Clock;
}  // namespace

void Connection::schedule_check_locked(Clock::time_point when) {
  // A pending earlier check schedules the next one itself.
  if (when >= check_at_ && check_at_ > Clock::now()) return;
  check_at_ = when;
  host_.schedule(id_, when);
}

void Connection::on_deadline() {
  const auto now = Clock::now();
  const auto idle = ctx_.limits.idle_timeout;
  std::uint64_t seen = 0;
  bool finish_now = false;
  {
    MutexLock lock(mu_);
    if (closing_ || now < check_at_) return;  // closing, or a stale entry
    check_at_ = Clock::time_point::max();
    if (!hello_done_) {
      const auto due = accepted_ + ctx_.limits.handshake_timeout;
      if (now < due) return schedule_check_locked(due);
      client_log().warn("connection {} ({}): no HELLO within {} ms; closing it", id_,
                        peer_description(fd_), ctx_.limits.handshake_timeout.count());
      close_locked();
      finish_now = finish_due_locked();
    } else if (!out_.empty()) {
      const auto due = out_since_ + ctx_.limits.write_timeout;
      if (now < due) return schedule_check_locked(due);
      client_log().warn(
          "connection {}: the client did not read its reply within {} ms; closing it", id_,
          ctx_.limits.write_timeout.count());
      close_locked();
      finish_now = finish_due_locked();
    } else if (idle.count() > 0) {
      if (serving_ || reading_ || !queue_.empty()) return schedule_check_locked(now + idle);
      if (now < last_activity_ + idle) return schedule_check_locked(last_activity_ + idle);
      seen = activity_;
    } else {
      return;
    }
  }
  if (!finish_now && seen != 0) finish_now = close_if_still_idle(seen);
  if (finish_now) finish();
}

bool Connection::busy_locked() const {
  return serving_ || reading_ || !queue_.empty() || !out_.empty();
}

std::optional<Connection::Idle> Connection::idle() const {
  MutexLock lock(mu_);
  if (closing_ || busy_locked()) return std::nullopt;
  return Idle{last_activity_, activity_};
}

bool Connection::evict(const Idle& seen, const Status& why) {
  if (!close_if_still_idle(seen.seen, &why)) return false;
  finish();
  return true;
}

bool Connection::still_idle_locked(std::uint64_t seen, bool holds, bool recheck) {
  if (activity_ == seen && !holds && !busy_locked()) return true;
  if (recheck) {
    schedule_check_locked(std::max(Clock::now(), last_activity_) + ctx_.limits.idle_timeout);
  }
  return false;
}

bool Connection::close_if_still_idle(std::uint64_t seen, const Status* make_room) {
  const bool recheck = make_room == nullptr;
  {
    // Active by its messages: its lease slots are not looked at (the look
    // revokes those it does not use).
    MutexLock lock(mu_);
    if (closing_ || !still_idle_locked(seen, false, recheck)) return false;
  }
  // Its client may be reading tensors through its leases right now:
  // closing would let the daemon reuse memory under its views.
  const bool holds = ctx_.coordinator->holds_leases(id_);
  MutexLock lock(mu_);
  if (closing_ || !still_idle_locked(seen, holds, recheck)) return false;
  if (make_room != nullptr) {
    // Nothing is on its way out (not busy): the frame goes out whole, or
    // not at all if the client stopped reading.
    (void)ipc::send_frame_now(fd_, ipc::encode_error(*make_room));
  } else {
    client_log().info("connection {}: idle for {} ms holding no lease; closing it", id_,
                      ctx_.limits.idle_timeout.count());
  }
  close_locked();
  return finish_due_locked();
}

}  // namespace genomed::loader
