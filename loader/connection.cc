#include "loader/connection.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/safe_text.h"
#include "ipc/wire.h"
#include "loader/client_log.h"
#include "loader/handshake.h"
#include "loader/request_dispatch.h"

namespace genomed::loader {
namespace {

using ipc::Clock;

// True if an undecodable request still names the one-way RELEASE op.
bool is_release(std::string_view body) {
  auto m = ipc::Message::parse(body, ipc::kRequestLimits);
  if (!m) return false;
  auto op = m->root().str("op");
  return op.ok() && *op == ipc::op_name(ipc::Op::release);
}

}  // namespace

// Lets go of the connection's socket from the moment its request is about
// to block inside the coordinator, so other request threads read it
// meanwhile (RELEASEs, hang-ups, queued requests). A cache hit never blocks,
// so it never pays for this.
class Connection::WaitWatch final : public WaitHook {
 public:
  WaitWatch(Connection& conn, bool holding_socket) : conn_(conn), holding_(holding_socket) {}

  void before_wait() override {  // under the coordinator's lock
    if (waited_) return;
    waited_ = true;
    conn_.release_socket_while_waiting(holding_);
    holding_ = false;
    conn_.host_.blocking(true);
  }
  bool waited() const { return waited_; }
  bool holding_socket() const { return holding_; }

 private:
  Connection& conn_;
  bool holding_;
  bool waited_ = false;
};

Connection::Connection(int fd, ConnectionId id, const ConnectionContext& ctx, ConnectionHost& host)
    : fd_(fd),
      id_(id),
      ctx_(ctx),
      host_(host),
      accepted_(Clock::now()),
      warnings_(ctx.limits.warnings) {
  MutexLock lock(mu_);
  registered_events_ = initial_events();
  last_activity_ = accepted_;
  schedule_check_locked(accepted_ + ctx_.limits.handshake_timeout);
}

Connection::~Connection() { ::close(fd_); }

// Edge-triggered: an event says something new happened (data, a hang-up,
// room to write), and the thread that claims the socket reads until the
// socket is drained. An event that comes while another thread holds the
// socket is left to that thread (missed_events_), which takes it before it
// lets go; so no epoll_ctl is needed per request.
std::uint32_t Connection::initial_events() { return EPOLLIN | EPOLLRDHUP | EPOLLET; }

void Connection::on_event(std::uint32_t events) {
  {
    MutexLock lock(mu_);
    if (closing_) return;
    if (reading_) {
      missed_events_ |= events;
      return;
    }
    reading_ = true;
  }
  take_events(events);
  serve(/*holding_socket=*/true);
}

void Connection::take_events(std::uint32_t events) {
  if ((events & EPOLLOUT) != 0) {
    MutexLock lock(mu_);
    flush_locked();
  }
  const bool hung_up = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  bool open = true;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) open = receive();
  // What arrived with the hang-up was taken (RELEASEs applied) first.
  if (!open || hung_up) hang_up();
}

bool Connection::receive() {
  const auto take = [this](std::string_view body) { return take_frame(body); };
  for (;;) {
    {
      MutexLock lock(mu_);
      if (queue_.size() >= ctx_.limits.max_pipelined_requests) {
        paused_ = true;  // read again once the queue drains (serve())
        return true;
      }
    }
    Status bad;
    const FrameAssembler::Read read = in_.read(fd_, take, &bad);
    if (!bad.ok()) take_bad_frame(bad);
    if (read == FrameAssembler::Read::closed) return false;
    if (read == FrameAssembler::Read::drained) return true;
  }
}

void Connection::take_bad_frame(const Status& why) {
  ctx_.counters->bad_requests.fetch_add(1, std::memory_order_relaxed);
  if (std::string note; may_warn(&note))
    client_log().warn("connection {}: {}; closing it{}", id_, why.to_string(), note);
  refuse(ipc::encode_error(why));
}

bool Connection::take_frame(std::string_view body) {
  bool hello_done;
  {
    MutexLock lock(mu_);
    if (stop_reading_) return false;
    hello_done = hello_done_;
    note_activity_locked();
  }
  if (!hello_done) return take_hello(body);
  // Taken now, while the assembler holds them: only a PUBLISH keeps them.
  FrameFds fds = in_.take_frame_fds();
  auto req = ipc::decode_request(body);
  if (req && req->op == ipc::Op::release) {
    // One-way and about leases the client was already given: applied now,
    // ahead of requests still queued or waiting, so that memory it gives
    // back can serve them.
    const std::size_t ignored = ctx_.coordinator->release(req->leases, id_);
    if (ctx_.drain) ctx_.drain->leases_may_have_ended();
    if (ignored > 0) {
      ctx_.counters->releases_ignored.fetch_add(ignored, std::memory_order_relaxed);
      if (std::string note; may_warn(&note)) {
        client_log().warn(
            "connection {}: released {} lease id(s) it does not hold (of {} in one "
            "RELEASE); ignored{}",
            id_, ignored, req->leases.size(), note);
      }
    }
    return true;
  }
  if (!req) ctx_.counters->bad_requests.fetch_add(1, std::memory_order_relaxed);
  if (!req && is_release(body)) {
    // RELEASE has no reply: answering it would be read as the reply to the
    // client's next request. The stream can no longer be trusted.
    if (std::string note; may_warn(&note)) {
      client_log().warn("connection {}: malformed RELEASE ({}); closing it{}", id_,
                        printable(req.status().to_string()), note);
    }
    refuse("");
    return false;
  }
  if (!req && req.code() == Errc::malformed_frame) {
    // Not msgpack: the stream is unusable.
    if (std::string note; may_warn(&note)) {
      client_log().warn("connection {}: {}; closing it{}", id_, printable(req.status().to_string()),
                        note);
    }
    refuse(ipc::encode_error(req.status()));
    return false;
  }
  Item item;
  if (req) {
    // Kept only for a peer that may publish: nobody else can make the
    // daemon hold descriptors in a queue (dispatch refuses it anyway).
    if (req->op == ipc::Op::publish && may_publish()) item.fds = std::move(fds);
    item.request = std::move(req).value();
  } else
    item.reply = ipc::encode_error(req.status());  // unknown ops, missing fields: answered
  MutexLock lock(mu_);
  queue_.push_back(std::move(item));
  return true;
}

bool Connection::may_publish() {
  if (!may_publish_) {
    may_publish_ = AccessControl::check_publisher(ctx_.access.get(), fd_).ok();
  }
  return *may_publish_;
}

bool Connection::take_hello(std::string_view body) {
  auto hello = accept_hello(body, fd_, id_, ctx_,
                            [this](std::string* note) { return may_warn(note); });
  if (!hello) {
    refuse(ipc::encode_error(hello.status()));
    return false;
  }
  MutexLock lock(mu_);
  hello_done_ = true;
  slot_page_ = hello->slot_page;
  send_locked(ipc::encode_reply(hello->reply), hello->pass_fds());
  // Passed (or the connection is closing): the mapping stays.
  if (slot_page_) slot_page_->close_fd();
  if (ctx_.limits.idle_timeout.count() > 0) {
    schedule_check_locked(last_activity_ + ctx_.limits.idle_timeout);
  }
  return true;
}

void Connection::refuse(std::string reply) {
  MutexLock lock(mu_);
  stop_reading_ = true;
  Item item;
  item.reply = std::move(reply);
  item.close_after = true;
  queue_.push_back(std::move(item));
}

void Connection::hang_up() {
  {
    MutexLock lock(mu_);
    peer_gone_ = true;
    queue_.clear();  // nobody reads the answers
    if (!serving_) {
      close_locked();
      return;
    }
    // A request of it runs (maybe waiting for a load): end its leases now,
    // not when the request returns; finish() waits for this abandon().
    abandoned_ = true;
    abandoning_ = true;
  }
  ctx_.coordinator->abandon(id_);
  bool finish_now;
  {
    MutexLock lock(mu_);
    abandoning_ = false;
    finish_now = finish_due_locked();
  }
  if (finish_now) finish();
}

void Connection::serve(bool holding_socket) {
  for (;;) {
    Item item;
    bool took = false;
    bool finish_now = false;
    std::uint32_t missed = 0;
    {
      MutexLock lock(mu_);
      if (closing_ || serving_ || !out_.empty() || queue_.empty()) {
        // Another thread serves, a reply waits for room, or nothing to do.
        if (holding_socket && missed_events_ != 0 && !closing_) {
          missed = std::exchange(missed_events_, 0);  // came while this thread held it
        } else if (holding_socket) {
          reading_ = false;
          missed_events_ = 0;
        }
        finish_now = finish_due_locked();
      } else {
        serving_ = took = true;
        item = std::move(queue_.front());
        queue_.pop_front();
        if (paused_ && queue_.size() < ctx_.limits.max_pipelined_requests) {
          paused_ = false;  // read what waits in the socket
          if (reading_)
            missed_events_ |= EPOLLIN;
          else
            repoll_locked();
        }
      }
    }
    if (missed != 0) {
      take_events(missed);
      continue;
    }
    if (!took) {
      if (finish_now) finish();
      return;
    }
    holding_socket = run(item, holding_socket);
  }
}

bool Connection::run(Item& item, bool holding_socket) {
  std::string reply;
  if (item.request) {
    WaitWatch watch(*this, holding_socket);
    reply = dispatch(*item.request, ctx_,
                     {.id = id_,
                      .socket = fd_,
                      .fds = &item.fds,
                      .wait = &watch,
                      .slot_page = slot_page(),
                      .may_warn = [this](std::string* note) { return may_warn(note); }});
    holding_socket = watch.holding_socket();
    if (watch.waited()) host_.blocking(false);
  } else {
    reply = std::move(item.reply);
  }
  MutexLock lock(mu_);
  serving_ = false;
  note_activity_locked();
  if (abandoned_) {
    if (!closing_) {
      client_log().info("connection {}: the client hung up while its request waited; closing it",
                        id_);
    }
    close_locked();
  } else if (!closing_) {
    if (!reply.empty()) send_locked(reply);
    if (item.close_after) close_locked();
  }
  if (holding_socket && !closing_ && queue_.empty() && missed_events_ == 0) {
    // Nothing more to read or serve: let go of the socket with the reply, as
    // serve() would on its next turn. A client that has its reply then finds
    // its connection idle (make_room may close it), not still held by a
    // thread that has yet to come back for the lock.
    reading_ = false;
    holding_socket = false;
  }
  return holding_socket;
}

bool Connection::may_warn(std::string* note) {
  LogLimiter::Verdict v;
  {
    MutexLock lock(mu_);
    v = warnings_.admit(Clock::now());
  }
  if (!v.write) {
    ctx_.counters->log_lines_suppressed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  note->clear();
  if (v.held_back > 0) {
    *note = " (" + std::to_string(v.held_back) +
            " more warning(s) about this connection were held back before this one)";
  }
  return true;
}

void Connection::release_socket_while_waiting(bool holding_socket) {
  if (!holding_socket) return;  // another thread holds it, or nobody does already
  MutexLock lock(mu_);
  reading_ = false;
  // Events that came meanwhile are reported again to whoever claims next.
  if (std::exchange(missed_events_, 0) != 0) repoll_locked();
}

std::shared_ptr<LeaseSlotPage> Connection::slot_page() const {
  MutexLock lock(mu_);
  return slot_page_;
}

void Connection::send_locked(std::string_view body, std::span<const int> pass_fds) {
  switch (out_.send(fd_, body, pass_fds)) {
    case ReplyBuffer::Sent::whole:  // the usual case
    case ReplyBuffer::Sent::behind:
      return;
    case ReplyBuffer::Sent::failed:
      peer_gone_ = true;  // gone, or the descriptor could not ride along
      close_locked();
      return;
    case ReplyBuffer::Sent::partial:
      out_since_ = Clock::now();
      schedule_check_locked(out_since_ + ctx_.limits.write_timeout);
      update_interest_locked();  // EPOLLOUT
      return;
  }
}

void Connection::flush_locked() {
  if (out_.empty() || closing_) return;
  if (!out_.flush(fd_)) {
    peer_gone_ = true;
    close_locked();
    return;
  }
  if (out_.empty()) update_interest_locked();  // no more EPOLLOUT
}

std::uint32_t Connection::wanted_events_locked() const {
  // EPOLLOUT only while a reply waits: otherwise every reply the client
  // reads would report room to write.
  return initial_events() | (out_.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
}

void Connection::update_interest_locked() {
  if (closing_ || peer_gone_) return;
  const std::uint32_t want = wanted_events_locked();
  if (want == registered_events_) return;
  registered_events_ = want;
  host_.rearm(fd_, id_, want);
}

void Connection::repoll_locked() {
  if (closing_ || peer_gone_) return;
  host_.rearm(fd_, id_, registered_events_);
}

void Connection::note_activity_locked() {
  ++activity_;
  last_activity_ = Clock::now();  // the idle limit, and which connection makes room when full
}

void Connection::close_locked() {
  closing_ = true;
  queue_.clear();
}

bool Connection::finish_due_locked() {
  if (!closing_ || reading_ || serving_ || abandoning_ || finished_) return false;
  finished_ = true;
  return true;
}

void Connection::finish() {
  host_.closed(id_, fd_);
  ctx_.coordinator->release_all(id_);
  if (ctx_.drain) ctx_.drain->leases_may_have_ended();
  // The descriptor itself closes with the last reference to this object.
  ::shutdown(fd_, SHUT_RDWR);
  std::uint64_t held_back;
  {
    MutexLock lock(mu_);
    held_back = warnings_.held_back();
  }
  if (held_back > 0) {
    client_log().warn(
        "connection {}: closed; {} more warning(s) about it were held back (at most {} "
        "then one per {} ms are written)",
        id_, held_back, ctx_.limits.warnings.burst, ctx_.limits.warnings.interval.count());
  } else {
    client_log().debug("connection {}: closed", id_);
  }
}

void Connection::shut_down() {
  bool finish_now;
  {
    MutexLock lock(mu_);
    peer_gone_ = true;
    close_locked();
    finish_now = finish_due_locked();
  }
  if (finish_now) finish();
}

}  // namespace genomed::loader
