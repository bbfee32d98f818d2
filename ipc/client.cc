// The client library (include/genomed/client.h) over the wire protocol.
#include "genomed/client.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>

#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "worker/format/resident_layout.h"

namespace genomed {
namespace client_detail {

// A validated resident header and the views into the arena it describes.
struct ParsedAdapter {
  std::span<const std::byte> bytes;
  format::ResidentLayout layout;     // owns the names and shapes the views point at
  format::AdapterContract contract;  // owns the config and the module paths
  std::vector<TensorView> views;     // built once, never resized: modules point into it
  std::vector<LoraModule> modules;
};

// Lock order: call_mu before write_mu. A request holds call_mu until its
// reply arrives; a release (one-way) needs only write_mu, held for one frame
// write, so it never waits behind another thread's pending request.
struct Connection {
  ~Connection() {
    if (arena != nullptr) ::munmap(const_cast<std::byte*>(arena), arena_bytes);
    if (fd >= 0) ::close(fd);
  }

  // One request, one reply. REQUIRES: the op has a reply.
  Result<std::string> call(const ipc::Request& req) {
    std::lock_guard call_lock(call_mu);
    if (broken) return Status(Errc::not_connected, "the connection to genomed was lost");
    Status sent = write(ipc::encode_request(req));
    if (!sent.ok()) return lost(sent);
    auto reply = reader->read(ipc::kMaxReplyFrame);
    if (!reply) return lost(reply.status());
    return std::move(reply->body);
  }

  // One-way message (RELEASE). Best effort: a dead connection has released
  // everything already.
  void send(const ipc::Request& req) {
    if (!broken && !write(ipc::encode_request(req)).ok()) (void)lost(Status::Ok());
  }

  Status write(const std::string& frame) {
    std::lock_guard write_lock(write_mu);
    return ipc::write_frame(fd, frame);
  }

  // Marks the connection dead. The descriptor stays open (shut down) until
  // the Connection is destroyed, so a thread still using it never touches a
  // reused descriptor number.
  Status lost(const Status& why) {
    if (!broken.exchange(true)) ::shutdown(fd, SHUT_RDWR);
    return Status(Errc::not_connected, "lost the connection to genomed" +
                                           (why.ok() ? std::string() : ": " + why.message()));
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

  static constexpr std::size_t kParsedCacheEntries = 64;
  struct CachedAdapter {
    std::uint64_t generation, offset, length;
    std::shared_ptr<const ParsedAdapter> adapter;
  };
  std::mutex cache_mu;  // guards `parsed` (leases are built outside `mu`)
  std::list<CachedAdapter> parsed;

  std::mutex call_mu;   // serializes request/reply pairs; guards reader
  std::mutex write_mu;  // one frame at a time on fd
  std::atomic<bool> broken{false};
  int fd = -1;                               // constant after connect
  std::unique_ptr<ipc::FrameReader> reader;  // over fd; used under call_mu
  const std::byte* arena = nullptr;          // PROT_READ mapping of the whole arena
  std::uint64_t arena_bytes = 0;
  std::uint64_t daemon_pid = 0;
};

struct LeaseState {
  std::shared_ptr<Connection> conn;
  std::string name;
  std::uint64_t id = 0;
  std::uint64_t generation = 0;
  std::shared_ptr<const ParsedAdapter> adapter;
  bool released = false;
};

}  // namespace client_detail

using client_detail::Connection;
using client_detail::LeaseState;
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

Result<Client> Client::connect(const std::string& socket_path, const std::string& client_name) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Status(Errc::bad_request, "socket path '" + socket_path + "' is too long");
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  auto conn = std::make_shared<Connection>();
  conn->fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (conn->fd < 0)
    return Status(Errc::not_connected, std::string("socket: ") + std::strerror(errno));
  if (::connect(conn->fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return Status(Errc::not_connected, "cannot connect to genomed at '" + socket_path + "': " +
                                           std::strerror(errno) + " (is the daemon running?)");
  }
  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = ipc::kProtocolVersion;
  hello.client = client_name;
  conn->reader = std::make_unique<ipc::FrameReader>(conn->fd);
  GENOMED_RETURN_IF_ERROR(ipc::write_frame(conn->fd, ipc::encode_request(hello)));
  GENOMED_ASSIGN_OR_RETURN(
      ipc::ReceivedFrame frame,
      conn->reader->read(ipc::kMaxReplyFrame, std::nullopt, /*accept_fd=*/true));
  const int arena_fd = frame.fd;
  auto reply = ipc::decode_hello_reply(frame.body);
  if (!reply || arena_fd < 0) {
    if (arena_fd >= 0) ::close(arena_fd);
    return reply ? Status(Errc::bad_request, "the daemon's HELLO reply carried no arena descriptor")
                 : reply.status();
  }
  void* p = ::mmap(nullptr, reply->arena_bytes, PROT_READ, MAP_SHARED, arena_fd, 0);
  const int map_errno = errno;
  ::close(arena_fd);  // the mapping keeps the arena alive
  if (p == MAP_FAILED) {
    return Status(Errc::internal,
                  std::string("cannot map the arena read-only: ") + std::strerror(map_errno));
  }
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
  auto layout = format::read_layout_header(adapter->bytes, &adapter->contract);
  if (!layout) return fail(layout.status().message());
  adapter->layout = std::move(layout).value();
  adapter->views.reserve(adapter->layout.tensors.size());
  for (const auto& t : adapter->layout.tensors) {
    TensorView v;
    v.name = t.name;
    v.dtype = format::dtype_name(t.dtype);
    v.element_size = format::dtype_size(t.dtype);
    v.shape = t.shape;
    v.data = adapter->bytes.subspan(t.offset, t.length);
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
  for (const format::ContractModule& m : adapter->contract.modules) {
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

Result<std::vector<Lease>> Client::acquire(const std::vector<std::string>& names) {
  ipc::Request req;
  req.op = ipc::Op::acquire;
  req.names = names;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req));
  GENOMED_ASSIGN_OR_RETURN(ipc::AcquireReply reply, ipc::decode_acquire_reply(body));
  std::vector<Lease> leases;
  leases.reserve(reply.grants.size());
  Status first_error;
  for (const auto& g : reply.grants) {
    auto state = make_lease(conn_, g);
    if (!state) {
      if (first_error.ok()) first_error = state.status();
      continue;
    }
    leases.push_back(Lease(std::move(state).value()));
  }
  if (!first_error.ok()) return first_error;  // the leases built so far release themselves
  if (leases.size() != names.size()) {
    return Status(Errc::bad_request, "the daemon granted " + std::to_string(leases.size()) +
                                         " leases for " + std::to_string(names.size()) + " names");
  }
  return leases;
}

Result<Lease> Client::acquire(std::string_view name) {
  GENOMED_ASSIGN_OR_RETURN(std::vector<Lease> leases,
                           acquire(std::vector<std::string>{std::string(name)}));
  return std::move(leases.front());
}

Result<LoadInfo> Client::load(std::string_view name) {
  ipc::Request req;
  req.op = ipc::Op::load;
  req.names = {std::string(name)};
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req));
  return ipc::decode_load_reply(body);
}

Result<UnloadInfo> Client::unload(std::string_view name) {
  ipc::Request req;
  req.op = ipc::Op::unload;
  req.names = {std::string(name)};
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req));
  return ipc::decode_unload_reply(body);
}

Result<std::vector<AdapterInfo>> Client::list() {
  ipc::Request req;
  req.op = ipc::Op::list;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req));
  GENOMED_ASSIGN_OR_RETURN(ipc::ListReply r, ipc::decode_list_reply(body));
  return std::move(r.adapters);
}

Result<Stats> Client::stats() {
  ipc::Request req;
  req.op = ipc::Op::stats;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req));
  GENOMED_ASSIGN_OR_RETURN(ipc::StatsReply r, ipc::decode_stats_reply(body));
  return std::move(r.values);
}

Result<Health> Client::health() {
  ipc::Request req;
  req.op = ipc::Op::health;
  GENOMED_ASSIGN_OR_RETURN(std::string body, conn_->call(req));
  return ipc::decode_health_reply(body);
}

}  // namespace genomed
