// The client library (include/genomed/client.h) over the wire protocol.
#include "genomed/client.h"

#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "ipc/framing.h"
#include "ipc/timed_mutex.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"
#include "layout/lease_slot.h"
#include "layout/resident_layout.h"
#include "layout/tensor_checksum.h"

namespace genomed {
namespace client_detail {

// A validated resident header and the views into the arena it describes.
struct ParsedAdapter {
  std::span<const std::byte> bytes;
  layout::ResidentLayout layout;     // owns the names and shapes the views point at
  layout::AdapterContract contract;  // owns the config and the module paths
  std::vector<TensorView> views;     // built once, never resized: modules point into it
  std::vector<LoraModule> modules;
};

using Millis = std::chrono::milliseconds;

// ---- fork() ----
// A child of fork() inherits every Connection: the socket (shared with the
// parent: one byte it writes or reads mixes with the parent's requests and
// replies), the lease-slot page (MAP_SHARED: a give-back would lower the
// parent's counts) and every Lease (whose destructor would end the parent's
// lease). So a Connection belongs to the process that connected it, told
// apart by this counter: every child of fork() adds 1 to its copy
// (pthread_atfork, registered before the first connect), so a Connection
// made in an earlier generation is a parent's. One relaxed load per check,
// no system call (getpid() is one): the slot path stays free of them.
namespace {  // this library's own: nothing of it is exported

std::atomic<std::uint64_t> fork_generation{0};

void count_fork_in_child() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

// The generation now; registers the handler on the first call (connect
// calls it before it makes a Connection).
std::uint64_t current_fork_generation() {
  static const int registered = ::pthread_atfork(nullptr, nullptr, count_fork_in_child);
  (void)registered;  // it fails only without memory: then every fork goes unnoticed
  return fork_generation.load(std::memory_order_relaxed);
}

// "5 s", "250 ms", "1.5 s": a timeout as the messages show it.
std::string duration_text(Millis t) {
  const long long ms = t.count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ms) / 1000.0);
  return buf;
}

// When a call of `timeout` started now must end; nullopt for kNoTimeout (or
// one too far away to add to the clock).
std::optional<ipc::Clock::time_point> deadline_after(Millis timeout) {
  if (timeout >= std::chrono::duration_cast<Millis>(std::chrono::hours(24 * 365 * 100))) {
    return std::nullopt;
  }
  return ipc::Clock::now() + std::max(timeout, Millis(0));
}

// Whether a failed decode is the daemon's own error reply ("ok": false with
// a known code), which the caller gets as it is; anything else means the
// reply does not follow the protocol.
bool is_daemon_error(std::string_view body, const Status& decoded) {
  auto m = ipc::Message::parse(body, ipc::kReplyLimits);
  if (!m) return false;
  auto ok = m->root().boolean("ok");
  auto code = m->root().u64("code");
  if (!ok || *ok || !code || !m->root().str("message")) return false;
  const auto errc = errc_from_int(*code);
  return errc && *errc != Errc::ok && *errc == decoded.code();
}

// A reply decoder's result, with failures that are not the daemon's own error
// reply turned into Errc::protocol_error.
template <class T>
Result<T> checked(Result<T> decoded, std::string_view body, std::string_view what) {
  if (decoded.ok() || is_daemon_error(body, decoded.status())) return decoded;
  return Status(Errc::protocol_error, std::string(what) +
                                          ": genomed's reply does not follow the protocol: " +
                                          decoded.status().message());
}

// Lock order: call_mu before write_mu. A request holds call_mu until its
// reply arrives; a release (one-way) needs only write_mu, held for one frame
// write, so it never waits behind another thread's pending request. Every
// wait is bounded by the call's deadline: for call_mu (a timed mutex), for
// room in the socket (write_frame's poll), for the reply (a first recvmsg
// bounded by SO_RCVTIMEO, then FrameReader's poll); write_mu is held for one
// frame write at most, itself bounded.
struct Connection {
  ~Connection() {
    if (arena != nullptr) ::munmap(const_cast<std::byte*>(arena), arena_bytes);
    if (slot_page != nullptr) ::munmap(slot_page, slot_page_bytes);
    if (fd >= 0) ::close(fd);
  }

  // Why a broken connection refuses requests (`broken_why`).
  enum Broken : int { kUsable = 0, kTimedOut, kLost, kProtocol };

  // Whether this process is a child of fork() of the one that connected:
  // then nothing is sent, read, shut down or given back here, and every
  // request fails (forked_text()).
  bool foreign() const {
    return fork_generation.load(std::memory_order_relaxed) != generation;
  }
  std::string forked_text(std::string_view op) const {
    return std::string(op) + ": this client was connected by process " +
           std::to_string(owner_pid) + "; this process (" + std::to_string(::getpid()) +
           ") is a child of fork() and cannot use it (its requests and replies would mix "
           "with the parent's on the one socket): connect again in this process";
  }

  // One request, one reply, within `timeout`. REQUIRES: the op has a reply.
  Result<std::string> call(const ipc::Request& req, Millis timeout) {
    return call_until(req, timeout, deadline_after(timeout));
  }

  // The same by a `deadline` that may have started earlier (a call of
  // several round trips: LIST's pages); `timeout` is the call's, for messages.
  Result<std::string> call_until(const ipc::Request& req, Millis timeout,
                                 std::optional<ipc::Clock::time_point> deadline) {
    const std::string op(ipc::op_name(req.op));
    // Before call_mu: another thread of the parent may have held it at the fork.
    if (foreign()) return Status(Errc::not_connected, forked_text(op));
    std::unique_lock call_lock(call_mu, std::defer_lock);
    if (!deadline) {
      call_lock.lock();
    } else if (!call_lock.try_lock_until(*deadline)) {
      return Status(Errc::timeout,
                    op + ": no reply from genomed within " + duration_text(timeout) +
                        ": another thread's request on this connection took all that time "
                        "(requests on one connection are serialized); nothing was sent and "
                        "the connection stays usable");
    }
    if (const int why = broken_why.load(); why != kUsable) {
      return Status(Errc::not_connected, op + ": " + broken_text(why) + "; connect again");
    }
    Status sent = write(ipc::encode_request(req), deadline);
    if (!sent.ok()) {
      if (sent.code() == Errc::timeout) {
        break_off(kTimedOut, /*writes_too=*/true);  // part of the frame may be out
        return Status(Errc::timeout, op + ": genomed did not take the request within " +
                                         duration_text(timeout) + timed_out_tail());
      }
      if (writes_broken) {  // a release timed out meanwhile
        return Status(Errc::not_connected, op + ": " + broken_text(broken_why) + "; connect again");
      }
      return lost(op, sent);
    }
    bound_receive(deadline);
    auto reply = reader->read(ipc::kMaxReplyFrame, deadline);
    if (!reply) {
      if (reply.code() == Errc::timeout) {
        break_off(kTimedOut, /*writes_too=*/false);
        return Status(Errc::timeout, op + ": no reply from genomed within " +
                                         duration_text(timeout) + timed_out_tail());
      }
      if (reply.code() == Errc::frame_too_large) {
        break_off(kProtocol, /*writes_too=*/false);  // the stream is out of step
        return Status(Errc::protocol_error,
                      op + ": genomed's reply breaks the protocol: " + reply.status().message());
      }
      return lost(op, reply.status());
    }
    return std::move(reply->body);
  }

  // Keeps SO_RCVTIMEO at the time left to `deadline` (rounded up to the
  // millisecond; none without a deadline), so that the reader's first,
  // blocking recvmsg cannot outlast the deadline, and a reply that comes in
  // time costs one system call (FrameReader::set_blocking_first_receive).
  // A call of the same kind as the last one finds it set already.
  void bound_receive(std::optional<ipc::Clock::time_point> deadline) {
    Millis want(0);  // 0: no timeout
    if (deadline) {
      want = std::max(Millis(1), std::chrono::ceil<Millis>(*deadline - ipc::Clock::now()));
      if (receive_timeout.count() != 0 && receive_timeout <= want &&
          receive_timeout + Millis(10) >= want) {
        return;  // never later than the deadline; at most 10 ms early (then poll()s)
      }
    } else if (receive_timeout.count() == 0) {
      return;
    }
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(want.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((want.count() % 1000) * 1000);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0) {
      receive_timeout = want;
    } else {
      reader->set_blocking_first_receive(false);  // poll() before every recvmsg
    }
  }

  // One-way message (RELEASE). Best effort: a closed connection has released
  // everything already, and one whose writes broke releases everything when
  // its socket closes.
  void send(const ipc::Request& req) {
    if (writes_broken || foreign()) return;  // a child never releases its parent's leases
    const Status s = write(ipc::encode_request(req), deadline_after(options.request_timeout));
    if (s.code() == Errc::timeout)
      break_off(kTimedOut, /*writes_too=*/true);
    else if (!s.ok() && !writes_broken)  // writes_broken: refused, not lost
      (void)lost("release", s);
  }

  Status write(const std::string& frame, std::optional<ipc::Clock::time_point> deadline) {
    std::lock_guard write_lock(write_mu);
    if (writes_broken) return Status(Errc::not_connected, "the connection is broken");
    return ipc::write_frame(fd, frame, -1, deadline);
  }

  static std::string timed_out_tail() {
    return "; this connection is now broken (a late reply would be taken for the next "
           "one): connect again";
  }

  static std::string broken_text(int why) {
    switch (why) {
      case kTimedOut:
        return "this connection is broken: an earlier call on it timed out";
      case kProtocol:
        return "this connection is broken: genomed sent a reply that breaks the protocol";
      default:
        return "the connection to genomed was lost";
    }
  }

  // Refuses further requests (and, with `writes_too`, writes). The socket
  // stays open, so the daemon keeps this connection's leases until the
  // Connection is destroyed.
  void break_off(Broken why, bool writes_too) {
    int expected = kUsable;
    broken_why.compare_exchange_strong(expected, why);
    if (writes_too) writes_broken = true;
  }

  // Marks the connection dead: the daemon is gone or closed it. The
  // descriptor stays open (shut down) until the Connection is destroyed, so
  // a thread still using it never touches a reused descriptor number.
  Status lost(const std::string& op, const Status& why) {
    break_off(kLost, /*writes_too=*/true);
    if (!foreign()) ::shutdown(fd, SHUT_RDWR);  // shutdown would end the parent's connection
    return Status(Errc::not_connected, op + ": lost the connection to genomed: " + why.message());
  }

  // The tensor table of a resident copy, parsed once and shared by every
  // lease on that copy. Keyed by (generation, offset, length): a grant with
  // the same key names the same bytes, unchanged (a generation is one load,
  // and memory under a lease is never reused). Returns nullptr on a miss.
  std::shared_ptr<const ParsedAdapter> cached(const ipc::LeaseGrant& g) {
    std::lock_guard lock(cache_mu);
    for (auto it = parsed.begin(); it != parsed.end(); ++it) {
      if (it->generation == g.generation && it->offset == g.offset && it->length == g.length) {
        parsed.splice(parsed.begin(), parsed, it);  // most recent first
        return it->adapter;
      }
    }
    return nullptr;
  }
  void remember(const ipc::LeaseGrant& g, std::shared_ptr<const ParsedAdapter> adapter) {
    std::lock_guard lock(cache_mu);
    parsed.push_front({g.generation, g.offset, g.length, std::move(adapter)});
    if (parsed.size() > kParsedCacheEntries) parsed.pop_back();
  }

  // ---- lease slots (layout/lease_slot.h) ----
  // What one slot holds: the grant the daemon made of it.
  struct SlotGrant {
    std::uint32_t index = 0;
    std::uint32_t tag = 0;
    std::uint64_t lease = 0;  // the daemon's lease id that holds the slot
    std::uint64_t generation = 0;
    std::shared_ptr<const ParsedAdapter> adapter;
  };
  layout::LeaseSlot& slot(std::uint32_t index) { return slots[index]; }

  // Takes a lease on every name through its slot, or none (nullopt: ask the
  // daemon). A slot that refuses (wanted, revoked, granted again) is
  // forgotten: the daemon's reply to the ACQUIRE says what holds now.
  std::optional<std::vector<std::pair<std::string, SlotGrant>>> take_through_slots(
      const std::vector<std::string>& names) {
    std::vector<std::pair<std::string, SlotGrant>> taken;
    taken.reserve(names.size());
    bool all = true;
    {
      std::lock_guard lock(slot_mu);
      for (const std::string& name : names) {
        auto it = slot_of.find(name);
        if (it == slot_of.end()) {
          all = false;
          break;
        }
        if (!layout::take_slot_lease(slot(it->second.index), it->second.tag)) {
          slot_of.erase(it);
          all = false;
          break;
        }
        taken.emplace_back(name, it->second);
      }
    }
    if (all) return taken;
    for (const auto& [name, grant] : taken) give_back(grant.index, grant.tag, grant.lease);
    return std::nullopt;
  }

  // Records a slot the daemon granted with an ACQUIRE (replacing any
  // earlier grant for that adapter, which the daemon has ended).
  void remember_slot(const std::string& name, SlotGrant grant) {
    std::lock_guard lock(slot_mu);
    // The daemon granted this index anew: whatever this client remembers of
    // an earlier grant of it is over (its tag could come back one day).
    std::erase_if(slot_of, [&](const auto& e) { return e.second.index == grant.index; });
    slot_of.insert_or_assign(name, std::move(grant));
  }

  // Whether the daemon is still there, looked at most every 100 ms: slot
  // leases send nothing, so without this a client of a daemon that died
  // (SIGKILL, the OOM killer) would go on serving leases on a dead arena.
  // A hang-up breaks the connection: the next acquire asks and fails.
  bool daemon_alive() {
    const auto now = ipc::Clock::now().time_since_epoch().count();
    auto last = liveness_checked.load(std::memory_order_relaxed);
    if (now - last < std::chrono::nanoseconds(std::chrono::milliseconds(100)).count()) return true;
    if (!liveness_checked.compare_exchange_strong(last, now, std::memory_order_relaxed))
      return true;  // another thread looks now
    pollfd p{fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      (void)lost("acquire", Status(Errc::not_connected, "the daemon closed the connection"));
      return false;
    }
    return true;
  }

  // Gives back a lease taken through a slot; sends RELEASE when the daemon
  // wanted the slot back and this was its last lease, or when the slot is
  // not as this client left it.
  void give_back(std::uint32_t index, std::uint32_t tag, std::uint64_t lease) {
    if (foreign()) return;  // the page is shared with the parent: its counts are the parent's
    if (layout::give_back_slot_lease(slot(index), tag) == layout::GiveBack::kept) return;
    ipc::Request req;
    req.op = ipc::Op::release;
    req.leases = {lease};
    send(req);
  }

  std::atomic<std::int64_t> liveness_checked{0};  // steady clock, ns: daemon_alive()
  std::mutex slot_mu;  // guards slot_of
  std::unordered_map<std::string, SlotGrant> slot_of;
  layout::LeaseSlot* slots = nullptr;  // in slot_page; constant after connect
  std::uint32_t slot_count = 0;
  void* slot_page = nullptr;  // read-write mapping of the page (null: no slots)
  std::size_t slot_page_bytes = 0;

  static constexpr std::size_t kParsedCacheEntries = 64;
  struct CachedAdapter {
    std::uint64_t generation, offset, length;
    std::shared_ptr<const ParsedAdapter> adapter;
  };
  std::mutex cache_mu;  // guards `parsed` (leases are built outside `mu`)
  std::list<CachedAdapter> parsed;

  ipc::TimedMutex call_mu;                   // serializes request/reply pairs; guards reader
  std::mutex write_mu;                       // one frame at a time on fd
  std::atomic<int> broken_why{kUsable};      // set once; then no request is sent
  std::atomic<bool> writes_broken{false};    // a frame may be cut short: write nothing more
  int fd = -1;                               // constant after connect
  Millis receive_timeout{0};                 // fd's SO_RCVTIMEO (0: none); under call_mu
  ClientOptions options;                     // constant after connect
  std::unique_ptr<ipc::FrameReader> reader;  // over fd; used under call_mu
  const std::byte* arena = nullptr;          // PROT_READ mapping of the whole arena
  std::uint64_t arena_bytes = 0;
  std::uint64_t daemon_pid = 0;
  std::uint64_t generation = 0;  // fork_generation at connect; constant (foreign())
  pid_t owner_pid = 0;           // the process that connected (for messages)
};

struct LeaseState {
  std::shared_ptr<Connection> conn;
  std::string name;
  std::uint64_t id = 0;
  std::uint64_t generation = 0;
  std::shared_ptr<const ParsedAdapter> adapter;
  bool released = false;
  // Taken through this slot of the connection's page (given back there).
  std::optional<std::uint32_t> slot;
  std::uint32_t slot_tag = 0;
};

}  // namespace client_detail

using client_detail::checked;
using client_detail::Connection;
using client_detail::deadline_after;
using client_detail::duration_text;
using client_detail::is_daemon_error;
using client_detail::LeaseState;
using client_detail::Millis;
using client_detail::ParsedAdapter;

// ---- Lease ------------------------------------------------------------------

Lease::Lease(std::unique_ptr<LeaseState> state) : state_(std::move(state)) {}
Lease::Lease(Lease&&) noexcept = default;
Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
  }
  return *this;
}
Lease::~Lease() { release(); }

void Lease::release() {
  if (!state_ || state_->released) return;
  state_->released = true;
  if (state_->conn->foreign()) return;  // the parent's lease: it stays held
  if (state_->slot) {
    state_->conn->give_back(*state_->slot, state_->slot_tag, state_->id);
    return;
  }
  ipc::Request req;
  req.op = ipc::Op::release;
  req.leases = {state_->id};
  state_->conn->send(req);
}

const std::string& Lease::name() const { return state_->name; }
std::uint64_t Lease::id() const { return state_->id; }
std::uint64_t Lease::generation() const { return state_->generation; }
std::uint32_t Lease::lora_rank() const { return state_->adapter->layout.lora_r; }
double Lease::lora_alpha() const { return state_->adapter->layout.lora_alpha; }
const AdapterConfig& Lease::config() const { return state_->adapter->contract.config; }
std::span<const LoraModule> Lease::modules() const {
  if (state_->released) return {};
  return state_->adapter->modules;
}
std::span<const std::string> Lease::bias_tensors() const {
  return state_->adapter->contract.bias_tensors;
}
std::span<const std::string> Lease::saved_module_tensors() const {
  return state_->adapter->contract.saved_module_tensors;
}
std::span<const std::string> Lease::other_tensors() const {
  return state_->adapter->contract.other_tensors;
}
// A released lease shows no views: the daemon may reuse that memory.
std::span<const TensorView> Lease::tensors() const {
  if (state_->released) return {};
  return state_->adapter->views;
}
std::span<const std::byte> Lease::bytes() const {
  if (state_->released) return {};
  return state_->adapter->bytes;
}

Status Lease::verify(ChecksumMismatch* mismatch) const {
  if (state_->released) {
    return Status(Errc::bad_request, "lease " + std::to_string(state_->id) + " on '" +
                                         state_->name + "' was released: nothing left to verify");
  }
  const layout::ResidentLayout& layout = state_->adapter->layout;
  layout::TensorMismatch bad;
  const Status checked = layout::verify_checksums(layout, state_->adapter->bytes, &bad);
  if (checked.ok()) return checked;
  if (mismatch != nullptr) {
    *mismatch = {layout.tensors[bad.index].name, layout.tensors[bad.index].checksum, bad.actual};
  }
  return Status(checked.code(), "adapter '" + state_->name + "' (generation " +
                                    std::to_string(state_->generation) + "): " + checked.message());
}

const TensorView* Lease::find(std::string_view tensor_name) const {
  const auto v = tensors();
  auto it = std::lower_bound(v.begin(), v.end(), tensor_name,
                             [](const TensorView& t, std::string_view n) { return t.name < n; });
  return it != v.end() && it->name == tensor_name ? &*it : nullptr;
}

// ---- Client -----------------------------------------------------------------

Client::Client(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

std::uint64_t Client::arena_bytes() const { return conn_->arena_bytes; }
std::uint64_t Client::daemon_pid() const { return conn_->daemon_pid; }

bool Client::broken() const {
  return conn_->foreign() || conn_->broken_why.load() != Connection::kUsable;
}

Result<Client> Client::connect(const std::string& socket_path, const std::string& client_name) {
  ClientOptions options;
  options.client_name = client_name;
  return connect(socket_path, options);
}

namespace {

// Maps the daemon's page of `slots` lease slots read-write into `conn`,
// after checking that the descriptor holds the page it announces (a short
// one would fault on access).
Status map_slot_page(Connection& conn, int fd, std::uint32_t slots) {
  const std::size_t bytes = layout::lease_slot_page_bytes(slots);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 0 || static_cast<std::size_t>(st.st_size) < bytes) {
    return Status(Errc::protocol_error, "the daemon's page of " + std::to_string(slots) +
                                            " lease slots is shorter than " +
                                            std::to_string(bytes) + " bytes");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return Status(Errc::environment,
                  std::string("cannot map the lease slot page: ") + std::strerror(errno));
  }
  const auto* header = static_cast<const layout::LeaseSlotHeader*>(p);
  if (header->magic != layout::kLeaseSlotMagic || header->version != layout::kLeaseSlotVersion ||
      header->slots != slots) {
    ::munmap(p, bytes);
    return Status(Errc::protocol_error,
                  "the daemon's lease slot page has a wrong header (magic, version 1, slots)");
  }
  conn.slot_page = p;
  conn.slot_page_bytes = bytes;
  conn.slots = reinterpret_cast<layout::LeaseSlot*>(static_cast<std::byte*>(p) +
                                                    sizeof(layout::LeaseSlotHeader));
  conn.slot_count = slots;
  return Status::Ok();
}

// Why connect() to `path` failed with `error`, in words an operator can act
// on. A path naming something other than a socket fails with ECONNREFUSED,
// as a socket file left by a stopped daemon does, so the node is looked at:
// "is the daemon running?" would send them after the wrong cause.
std::string connect_error_text(const std::string& path, int error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    const char* kind = S_ISREG(st.st_mode)    ? "a regular file"
                       : S_ISDIR(st.st_mode)  ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "a file of another kind";
    return "'" + path + "' is " + kind +
           ", not a socket: give the path genomed listens on (its --socket)";
  }
  if (error == ENOENT)
    return std::string(std::strerror(error)) +
           " (is the daemon running? it creates its socket when it starts)";
  return std::string(std::strerror(error)) + " (is the daemon running?)";
}

}  // namespace

Result<Client> Client::connect(const std::string& socket_path, const ClientOptions& options) {
  const auto deadline = deadline_after(options.connect_timeout);
  const std::string where = "connect to genomed at '" + socket_path + "'";
  const auto timed_out = [&](const std::string& what) {
    return Status(Errc::timeout, where + ": " + what + " within " +
                                     duration_text(options.connect_timeout) +
                                     " (connect_timeout; is the daemon stopped or overloaded?)");
  };
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Status(Errc::bad_request, "socket path '" + socket_path + "' is too long");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  auto conn = std::make_shared<Connection>();
  conn->options = options;
  conn->generation = client_detail::current_fork_generation();
  conn->owner_pid = ::getpid();
  conn->fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (conn->fd < 0)
    return Status(Errc::not_connected, std::string("socket: ") + std::strerror(errno));
  // A Unix stream connect() waits while the daemon's listen backlog is full
  // (a daemon that is stopped, or too busy to accept); Linux bounds that wait
  // by SO_SNDTIMEO and then fails with EAGAIN. Reset to "no timeout" after:
  // writes have their own deadlines.
  const auto set_send_timeout = [&](Millis t) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(t.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
    (void)::setsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  };
  for (;;) {
    if (deadline) {
      const auto left = std::chrono::ceil<Millis>(*deadline - ipc::Clock::now());
      if (left <= Millis(0)) return timed_out("the daemon accepted no connection");
      set_send_timeout(left);
    }
    if (::connect(conn->fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN && deadline) return timed_out("the daemon accepted no connection");
    const int error = errno;
    return Status(Errc::not_connected,
                  "cannot " + where + ": " + connect_error_text(socket_path, error));
  }
  if (deadline) set_send_timeout(Millis(0));

  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = ipc::kProtocolVersion;
  hello.client = options.client_name;
  hello.lease_slots = options.lease_slots;
  conn->reader = std::make_unique<ipc::FrameReader>(conn->fd);
  if (Status s = ipc::write_frame(conn->fd, ipc::encode_request(hello), -1, deadline); !s.ok()) {
    if (s.code() == Errc::timeout) return timed_out("the daemon took no HELLO");
    // A daemon that refuses the connection (at its connection limit) says
    // why and closes it, maybe before HELLO arrives: its reply is waiting.
    auto why = conn->reader->read(ipc::kMaxReplyFrame, deadline);
    if (why) {
      auto refused = ipc::decode_hello_reply(why->body);
      if (!refused && is_daemon_error(why->body, refused.status())) return refused.status();
    }
    return Status(s.code(), where + ": HELLO: " + s.message());
  }
  auto frame = conn->reader->read(ipc::kMaxReplyFrame, deadline, /*max_fds=*/2);
  if (!frame) {
    if (frame.code() == Errc::timeout) return timed_out("no HELLO reply");
    if (frame.code() == Errc::frame_too_large) {
      return Status(Errc::protocol_error, where + ": HELLO reply: " + frame.status().message());
    }
    return Status(frame.code(), where + ": HELLO: " + frame.status().message());
  }
  const int arena_fd = frame->fds.empty() ? -1 : frame->fds[0];
  const int slots_fd = frame->fds.size() < 2 ? -1 : frame->fds[1];
  const auto close_arena_fd = [&] {
    if (arena_fd >= 0) ::close(arena_fd);
    if (slots_fd >= 0) ::close(slots_fd);
  };
  auto reply = checked(ipc::decode_hello_reply(frame->body), frame->body, where + ": HELLO reply");
  if (!reply) {
    close_arena_fd();
    return reply.status();
  }
  if (arena_fd < 0) {
    return Status(Errc::protocol_error,
                  where + ": the daemon's HELLO reply carried no arena descriptor");
  }
  // Mapping past the end of the segment would fault (SIGBUS) on access.
  struct stat st {};
  if (::fstat(arena_fd, &st) != 0 || st.st_size < 0 ||
      static_cast<std::uint64_t>(st.st_size) < reply->arena_bytes) {
    close_arena_fd();
    return Status(Errc::protocol_error,
                  where + ": the daemon's HELLO reply announces an arena of " +
                      std::to_string(reply->arena_bytes) + " bytes; its descriptor holds " +
                      std::to_string(st.st_size));
  }
  if ((reply->lease_slots > 0) != (slots_fd >= 0) || (slots_fd >= 0 && !options.lease_slots)) {
    close_arena_fd();
    return Status(Errc::protocol_error,
                  where + ": the daemon's HELLO reply announces " +
                      std::to_string(reply->lease_slots) + " lease slots with " +
                      (slots_fd >= 0 ? "a" : "no") + " page descriptor" +
                      (options.lease_slots ? "" : ", not asked for"));
  }
  if (slots_fd >= 0) {
    Status mapped = map_slot_page(*conn, slots_fd, reply->lease_slots);
    if (!mapped.ok()) {
      close_arena_fd();
      return Status(mapped.code(), where + ": " + mapped.message());
    }
  }
  void* p = ::mmap(nullptr, reply->arena_bytes, PROT_READ, MAP_SHARED, arena_fd, 0);
  const int map_errno = errno;
  close_arena_fd();  // the mappings keep the arena and the slot page alive
  if (p == MAP_FAILED) {
    return Status(Errc::environment,
                  std::string("cannot map the arena read-only: ") + std::strerror(map_errno));
  }
  conn->reader->set_blocking_first_receive(true);  // see Connection::bound_receive
  conn->arena = static_cast<const std::byte*>(p);
  conn->arena_bytes = reply->arena_bytes;
  conn->daemon_pid = reply->pid;
  return Client(std::move(conn));
}

namespace {

// Builds a Lease from a grant: validates the range against the arena and the
// resident header against the range, so a corrupt grant cannot make the
// client read outside its mapping.
Result<std::unique_ptr<LeaseState>> make_lease(const std::shared_ptr<Connection>& conn,
                                               const ipc::LeaseGrant& g) {
  auto state = std::make_unique<LeaseState>();
  state->conn = conn;
  state->name = g.name;
  state->id = g.lease;
  state->generation = g.generation;
  auto fail = [&](const std::string& why) {
    ipc::Request release;
    release.op = ipc::Op::release;
    release.leases = {g.lease};
    conn->send(release);
    return Status(Errc::layout_invalid, "adapter '" + g.name + "': " + why);
  };
  if (auto hit = conn->cached(g)) {
    state->adapter = std::move(hit);
    return state;
  }
  if (g.offset > conn->arena_bytes || g.length > conn->arena_bytes - g.offset) {
    return fail("the granted range lies outside the arena");
  }
  auto adapter = std::make_shared<ParsedAdapter>();
  adapter->bytes = std::span<const std::byte>(conn->arena + g.offset, g.length);
  auto layout = layout::read_layout_header(adapter->bytes, &adapter->contract);
  if (!layout) return fail(layout.status().message());
  adapter->layout = std::move(layout).value();
  adapter->views.reserve(adapter->layout.tensors.size());
  for (const auto& t : adapter->layout.tensors) {
    TensorView v;
    v.name = t.name;
    v.dtype = layout::dtype_name(t.dtype);
    v.element_size = layout::dtype_size(t.dtype);
    v.shape = t.shape;
    v.data = adapter->bytes.subspan(t.offset, t.length);
    v.checksum = t.checksum;
    adapter->views.push_back(v);
  }
  // read_layout_header checked that every tensor the contract names exists.
  const auto view = [&](const std::string& name) -> const TensorView* {
    auto it =
        std::lower_bound(adapter->views.begin(), adapter->views.end(), name,
                         [](const TensorView& t, const std::string& n) { return t.name < n; });
    return it != adapter->views.end() && it->name == name ? &*it : nullptr;
  };
  adapter->modules.reserve(adapter->contract.modules.size());
  for (const layout::ContractModule& m : adapter->contract.modules) {
    LoraModule lm;
    lm.path = m.path;
    lm.kind = m.kind;
    lm.a = view(m.a);
    lm.b = view(m.b);
    lm.magnitude = m.magnitude ? view(*m.magnitude) : nullptr;
    lm.lora_bias = m.lora_bias ? view(*m.lora_bias) : nullptr;
    lm.rank = m.rank;
    lm.alpha = m.alpha;
    lm.scaling = m.scaling;
    adapter->modules.push_back(lm);
  }
  conn->remember(g, adapter);
  state->adapter = std::move(adapter);
  return state;
}

}  // namespace

namespace {

// The optional fields of a LOAD, ACQUIRE or PIN. A negative keep_alive is
// refused: sent as 0 it would mean "never unload", the opposite of short.
Status apply(const LoadOptions& options, ipc::Request* req) {
  if (options.keep_alive) {
    if (options.keep_alive->count() < 0) {
      return Status(Errc::bad_request,
                    "keep_alive: expected 0 (never) or a positive duration, got " +
                        std::to_string(options.keep_alive->count()) + " ms");
    }
    req->keep_alive_ms = static_cast<std::uint64_t>(options.keep_alive->count());
  }
  req->priority = options.priority;
  return Status::Ok();
}

// The deadline of one call: its own, else the client's default for its kind.
Millis timeout_of(const Connection& conn, const Client::Timeout& timeout, bool long_op) {
  if (timeout) return *timeout;
  return long_op ? conn.options.load_timeout : conn.options.request_timeout;
}

}  // namespace

Result<std::vector<Lease>> Client::acquire(const std::vector<std::string>& names, Timeout timeout) {
  return acquire(names, LoadOptions{}, timeout);
}

Result<std::vector<Lease>> Client::acquire(const std::vector<std::string>& names,
                                           const LoadOptions& options, Timeout timeout) {
  if (conn_->slots != nullptr && !options.keep_alive && !names.empty() &&
      names.size() <= ipc::kMaxBatch && conn_->broken_why.load() == Connection::kUsable &&
      !conn_->foreign() && conn_->daemon_alive()) {
    if (auto taken = conn_->take_through_slots(names)) {
      std::vector<Lease> leases;
      leases.reserve(taken->size());
      for (auto& [name, grant] : *taken) {
        auto state = std::make_unique<LeaseState>();
        state->conn = conn_;
        state->name = name;
        state->id = grant.lease;
        state->generation = grant.generation;
        state->adapter = grant.adapter;
        state->slot = grant.index;
        state->slot_tag = grant.tag;
        leases.push_back(Lease(std::move(state)));
      }
      return leases;
    }
  }
  ipc::Request req;
  req.op = ipc::Op::acquire;
  req.names = names;
  GENOMED_RETURN_IF_ERROR(apply(options, &req));
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, true)));
  GENOMED_ASSIGN_OR_RETURN(ipc::AcquireReply reply,
                           checked(ipc::decode_acquire_reply(body), body, "acquire"));
  std::vector<Lease> leases;
  leases.reserve(reply.grants.size());
  Status first_error;
  for (const auto& g : reply.grants) {
    if (g.slot && (conn_->slots == nullptr || *g.slot >= conn_->slot_count)) {
      if (first_error.ok()) {
        first_error = Status(Errc::protocol_error,
                             "acquire: genomed granted lease slot " + std::to_string(*g.slot) +
                                 " of a page of " + std::to_string(conn_->slot_count));
      }
      ipc::Request release;  // not a lease this client can hold: give it back
      release.op = ipc::Op::release;
      release.leases = {g.lease};
      conn_->send(release);
      continue;
    }
    auto state = make_lease(conn_, g);
    if (!state) {
      if (first_error.ok()) first_error = state.status();
      continue;
    }
    if (g.slot) {
      (*state)->slot = g.slot;
      (*state)->slot_tag = g.slot_tag;
      conn_->remember_slot(g.name, {*g.slot, g.slot_tag, g.lease, g.generation, (*state)->adapter});
    }
    leases.push_back(Lease(std::move(state).value()));
  }
  if (!first_error.ok()) return first_error;  // the leases built so far release themselves
  if (leases.size() != names.size()) {
    return Status(Errc::protocol_error, "acquire: genomed granted " +
                                            std::to_string(leases.size()) + " leases for " +
                                            std::to_string(names.size()) + " names");
  }
  return leases;
}

Result<Lease> Client::acquire(std::string_view name, Timeout timeout) {
  GENOMED_ASSIGN_OR_RETURN(std::vector<Lease> leases,
                           acquire(std::vector<std::string>{std::string(name)}, timeout));
  return std::move(leases.front());
}

Result<LoadInfo> Client::load(std::string_view name, Timeout timeout) {
  return load(name, LoadOptions{}, timeout);
}

Result<LoadInfo> Client::load(std::string_view name, const LoadOptions& options,
                              Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::load;
  req.names = {std::string(name)};
  GENOMED_RETURN_IF_ERROR(apply(options, &req));
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, true)));
  return checked(ipc::decode_load_reply(body), body, "load");
}

Result<UnloadInfo> Client::unload(std::string_view name, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::unload;
  req.names = {std::string(name)};
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, false)));
  return checked(ipc::decode_unload_reply(body), body, "unload");
}

Result<LoadInfo> Client::prefetch(std::string_view name, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::load;
  req.names = {std::string(name)};
  req.prefetch = true;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, true)));
  return checked(ipc::decode_load_reply(body), body, "prefetch");
}

Result<PinInfo> Client::pin(std::string_view name, Timeout timeout) {
  return pin(name, LoadOptions{}, timeout);
}

Result<PinInfo> Client::pin(std::string_view name, const LoadOptions& options, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::pin;
  req.names = {std::string(name)};
  GENOMED_RETURN_IF_ERROR(apply(options, &req));
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, true)));
  return checked(ipc::decode_pin_reply(body), body, "pin");
}

Result<PinInfo> Client::unpin(std::string_view name, Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::unpin;
  req.names = {std::string(name)};
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, false)));
  return checked(ipc::decode_pin_reply(body), body, "unpin");
}

Result<std::vector<AdapterInfo>> Client::list(Timeout timeout) {
  // The daemon answers in pages (ipc::kMaxListPage entries each); this
  // follows them, every page within the one deadline of the call. Pages
  // start after the previous page's last name, so no name comes twice.
  const Millis budget = timeout_of(*conn_, timeout, false);
  const auto deadline = deadline_after(budget);
  std::vector<AdapterInfo> all;
  ipc::Request req;
  req.op = ipc::Op::list;
  for (;;) {
    GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call_until(req, budget, deadline));
    GENOMED_ASSIGN_OR_RETURN(ipc::ListReply r, checked(ipc::decode_list_reply(body), body, "list"));
    std::move(r.adapters.begin(), r.adapters.end(), std::back_inserter(all));
    if (!r.next) return all;
    if (*r.next <= req.after) {  // a daemon that does not advance would loop for ever
      return Status(Errc::protocol_error,
                    "list: genomed's reply does not follow the protocol: its page does not "
                    "advance past the cursor");
    }
    req.after = std::move(*r.next);
  }
}

Result<Stats> Client::stats(Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::stats;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, false)));
  GENOMED_ASSIGN_OR_RETURN(ipc::StatsReply r,
                           checked(ipc::decode_stats_reply(body), body, "stats"));
  return std::move(r.values);
}

Result<Health> Client::health(Timeout timeout) {
  ipc::Request req;
  req.op = ipc::Op::health;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req, timeout_of(*conn_, timeout, false)));
  return checked(ipc::decode_health_reply(body), body, "health");
}

}  // namespace genomed
