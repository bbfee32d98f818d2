// The genomed client library: connect to the daemon, acquire adapters, and
// read their tensors straight from the daemon's shared memory.
//
//   auto client = genomed::Client::connect("/run/genomed.sock");
//   auto lease = client->acquire("my-adapter");   // loads it if needed
//   for (const auto& t : lease->tensors()) use(t.name, t.shape, t.data);
//   // ~Lease releases it; the daemon may then evict it under pressure.
//
// Views are zero-copy and read-only: `TensorView::data` points into the
// arena the daemon passed as an O_RDONLY descriptor and this process mapped
// once, PROT_READ. A view is valid while its Lease lives and its connection
// is open (below); the daemon never reuses memory under a live lease. A
// Client (and its leases) may be used from several threads: requests on one
// connection are serialized, and a release (one-way) is written between them
// without waiting for a pending request's reply. The daemon applies a
// release as soon as it reads it, even while an earlier request of the same
// connection still waits: an acquire that needs exactly the memory another
// thread of the same Client is releasing gets it. (Requests themselves still
// wait for each other; threads that issue many requests concurrently do
// better with a Client each.)
//
// Deadlines. Every call is bounded (ClientOptions): connect() -- connecting
// and the HELLO exchange together -- by `connect_timeout` (default 5 s);
// load() and acquire(), which may wait for a worker to load the adapter and
// for memory, by `load_timeout` (120 s); unload(), list(), stats() and
// health() by `request_timeout` (5 s). Each request method takes an optional
// `timeout` that replaces the default for that one call (kNoTimeout: wait for
// ever). The time a call waits for another thread's request on the same
// Client counts against its deadline. A call that runs out of time returns
// Errc::timeout with a message naming the operation and the deadline.
//
// A timed-out request breaks the connection: its reply may still come, and
// would otherwise be taken for the answer to the next request, so every later
// request on this Client fails with Errc::not_connected -- connect again.
// (A call that timed out while still waiting for another thread's request
// sent nothing and leaves the connection usable.) broken() tells.
//
// Leases and a broken or lost connection. The daemon releases every lease of
// a connection when that connection closes, and may then reuse its memory.
//  - After a timeout this client keeps the socket open until the Client and
//    every Lease taken from it are destroyed, so the daemon keeps their
//    leases and their views stay valid meanwhile (unless the daemon closes
//    the connection itself: then as below). Lease::release() still reaches
//    the daemon, unless the timeout cut a request frame short; then the
//    leases end when the socket closes. A lease the daemon granted after the
//    client stopped waiting (the late reply to a timed-out acquire) is
//    unknown to the client and stays held until the socket closes: do not
//    keep a broken Client and its leases longer than needed.
//  - A lost connection (the daemon closed it or died; Errc::not_connected)
//    has had its leases released by the daemon. The Lease objects stay valid
//    objects and the arena stays mapped (reading it never faults), but the
//    bytes under their views may have been reused by then: views of a lease
//    whose connection has closed must not be used. The client learns that
//    the daemon closed a connection only at its next request on it.
//
// fork(). A Client and its Leases belong to the process that connected. A
// child of fork() (a pre-fork server's worker, multiprocessing) inherits
// copies of them that share the parent's socket and lease-slot page, so in
// the child they never write or read the socket, shut it down, or change
// the slot page: destroying or release()-ing an inherited Lease, or
// destroying an inherited Client, leaves the parent's leases held and its
// connection as it was. Every request on an inherited Client fails with
// Errc::not_connected ("... is a child of fork() ...: connect again in this
// process"), and broken() is true there. Views of an inherited Lease stay
// mapped, but only the parent's lease protects them, which the parent may
// end at any time: a child takes its own leases on its own Client.
// (Noticed through pthread_atfork, registered at the first connect; a
// process made by clone() or vfork() without fork()'s handlers must exec
// or exit without touching them.)
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "genomed/adapter.h"
#include "genomed/result.h"
#include "genomed/types.h"

namespace genomed {

struct TensorView {
  std::string_view name;
  std::string_view dtype;          // safetensors dtype name: "F16", "BF16", ...
  std::uint32_t element_size = 0;  // bytes per element
  std::span<const std::uint64_t> shape;
  std::span<const std::byte> data;  // in the read-only arena
  // XXH3-64 (seed 0, xxHash 0.8) of `data` as the load wrote it, from the
  // resident header: Lease::verify() checks the bytes against it.
  std::uint64_t checksum = 0;
};

// A tensor whose bytes no longer match the checksum its load recorded.
struct ChecksumMismatch {
  std::string tensor;
  std::uint64_t recorded = 0;  // in the resident header
  std::uint64_t actual = 0;    // of the bytes now
};

// One LoRA module of a leased adapter, with the factors PEFT applies:
// output += scaling * B(A(x)) (DoRA: see PEFT's dora.py for how the magnitude
// rescales it). Tensor pointers point into the lease's views.
struct LoraModule {
  std::string_view path;  // in the base model, e.g. "model.layers.0.self_attn.q_proj"
  ModuleKind kind = ModuleKind::linear;
  const TensorView* a = nullptr;          // [rank, in] (embedding: [rank, num_embeddings])
  const TensorView* b = nullptr;          // [out, rank] (embedding: [embedding_dim, rank])
  const TensorView* magnitude = nullptr;  // DoRA's magnitude vector; nullptr unless use_dora
  const TensorView* lora_bias = nullptr;  // B's bias; nullptr unless lora_bias
  std::uint32_t rank = 0;                 // effective rank (rank_pattern, else r)
  double alpha = 0;                       // effective alpha (alpha_pattern, else lora_alpha)
  double scaling = 0;                     // alpha / rank, or alpha / sqrt(rank) with use_rslora
};

namespace client_detail {
struct Connection;
struct LeaseState;
}  // namespace client_detail

// One lease on one resident adapter. Move-only; the destructor releases it.
class Lease {
 public:
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;
  ~Lease();

  const std::string& name() const;
  // The daemon's lease id. Leases taken through one lease slot (see
  // ClientOptions::lease_slots) share the id of the lease that holds the slot.
  std::uint64_t id() const;
  std::uint64_t generation() const;  // which load of `name` this copy is
  // The content digest of this copy: 32 lowercase hex digits of XXH3-128
  // over its validated config and every tensor's name, dtype, shape and
  // checksum (docs/protocol.md §8.2). Equal for equal content under any
  // name or generation, so a server can key its caches by it. Computed from
  // the resident header once per copy, and checked against the one the
  // daemon granted. Valid while the Lease lives, released or not.
  const std::string& digest() const;
  std::uint32_t lora_rank() const;   // config().r
  double lora_alpha() const;         // config().lora_alpha
  // The validated adapter_config.json: typed fields and the whole file as
  // JSON (config().json). Valid while the Lease lives, released or not.
  const AdapterConfig& config() const;
  // Every LoRA module, sorted by path. Empty after release().
  std::span<const LoraModule> modules() const;
  // Tensors outside the modules, by name: base-layer biases the adapter
  // trains (bias != "none"), weights of modules_to_save, and tensors no rule
  // explains (listed, never refused).
  std::span<const std::string> bias_tensors() const;
  std::span<const std::string> saved_module_tensors() const;
  std::span<const std::string> other_tensors() const;
  // Sorted by tensor name.
  std::span<const TensorView> tensors() const;
  // nullptr if the adapter has no tensor of that name.
  const TensorView* find(std::string_view tensor_name) const;
  // The adapter's whole resident range (header and tensors).
  std::span<const std::byte> bytes() const;

  // Hashes every tensor's bytes again and compares each with the checksum
  // its load recorded (TensorView::checksum). Status::Ok() if all match;
  // otherwise Errc::layout_invalid naming the first tensor (by name) that
  // differs, which `mismatch` (if given) receives. Reads every byte of the
  // adapter (XXH3 runs at several GB/s). A released lease has nothing left
  // to check: Errc::bad_request.
  Status verify(ChecksumMismatch* mismatch = nullptr) const;

  // Releases now instead of at destruction. Idempotent, and never waits for
  // another thread's request on the same Client (RELEASE is one-way; writing
  // it waits at most `request_timeout` for room in the socket, and a daemon
  // that takes none that long breaks the connection, ending every lease on
  // it when it closes). Afterwards tensors(),
  // modules() and bytes() are empty and find() returns nullptr: the daemon
  // may reuse the memory, so views taken before must not be used either.
  void release();

 private:
  friend class Client;
  explicit Lease(std::unique_ptr<client_detail::LeaseState> state);
  std::unique_ptr<client_detail::LeaseState> state_;
};

// A timeout that never expires.
inline constexpr std::chrono::milliseconds kNoTimeout = std::chrono::milliseconds::max();

// How a Client connects and how long its calls may take (see "Deadlines"
// above). A timeout of kNoTimeout waits for ever.
struct ClientOptions {
  // Free-form; the daemon logs it with the peer's pid and uid.
  std::string client_name = "libgenomed";
  // Ask the daemon for a page of lease slots (docs/protocol.md, "Lease
  // slots"): after the first acquire() of an adapter over the socket,
  // further acquire()s of it and their release()s are atomic operations in
  // shared memory, with no request at all, until the daemon wants the
  // memory back (then the next acquire() asks again). acquire() calls with a
  // keep_alive always ask the daemon.
  bool lease_slots = true;
  // connect(): connecting and the HELLO exchange together.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // unload(), list(), stats(), health(); also bounds writing one RELEASE.
  std::chrono::milliseconds request_timeout = std::chrono::seconds(5);
  // load() and acquire(): they may wait for a load (the daemon's
  // --load-timeout-ms) and for memory (--admission-timeout-ms).
  std::chrono::milliseconds load_timeout = std::chrono::seconds(120);
  // Asked when a signal interrupts a request's wait (EINTR: the handler was
  // installed without SA_RESTART), on the thread that waits (without the
  // GIL in the Python binding). A non-empty answer says why to stop
  // ("KeyboardInterrupt"): the call returns Errc::cancelled and the
  // connection breaks as after a timeout (leases taken before stay valid
  // while held; the socket closes with the last), later calls saying it was
  // "interrupted by <why>". Empty: the wait goes on. Asked only while a
  // request waits for its reply: not on the lease-slot path (no wait), not
  // for writes (a request's or a RELEASE's, bounded by their deadlines), nor
  // while a call waits for another thread's request on the connection. It
  // may drop leases (their RELEASE goes out); it must not make a request on
  // the same Client. Empty function: waits retry.
  std::function<std::string()> interrupted;
};

// What a load(), acquire() or pin() asks beyond its names (all optional:
// the defaults are what a request without them gets).
struct LoadOptions {
  // Unload the adapters after this long unused (no lease, no request);
  // 0: never. nullopt: leave each adapter's keep-alive as it is (at first
  // the daemon's --idle-unload). Negative: bad_request, nothing sent.
  std::optional<std::chrono::milliseconds> keep_alive;
  // Of the loads it starts or joins: the daemon's job queue runs higher
  // first, in arrival order within one.
  Priority priority = Priority::normal;
};

class Client {
 public:
  // A per-call deadline; std::nullopt (the default) takes ClientOptions'.
  using Timeout = std::optional<std::chrono::milliseconds>;

  // Connects, exchanges HELLO, receives the arena descriptor and maps it
  // read-only. Errc::not_connected if no daemon listens at `socket_path`;
  // Errc::timeout if the daemon does not accept the connection or answer
  // HELLO within `connect_timeout`; Errc::protocol_error if its HELLO reply
  // does not follow the protocol (no arena descriptor, a wrong shape).
  static Result<Client> connect(const std::string& socket_path, const ClientOptions& options);
  // The same with default options and this client name.
  static Result<Client> connect(const std::string& socket_path,
                                const std::string& client_name = "libgenomed");

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // Makes `name` resident (loading it if needed) and leases it.
  Result<Lease> acquire(std::string_view name, Timeout timeout = std::nullopt);
  // Several adapters in one round trip; all or nothing.
  Result<std::vector<Lease>> acquire(const std::vector<std::string>& names,
                                     Timeout timeout = std::nullopt);

  Result<LoadInfo> load(std::string_view name, Timeout timeout = std::nullopt);
  Result<LoadInfo> load(std::string_view name, const LoadOptions& options,
                        Timeout timeout = std::nullopt);
  Result<std::vector<Lease>> acquire(const std::vector<std::string>& names,
                                     const LoadOptions& options, Timeout timeout = std::nullopt);
  Result<UnloadInfo> unload(std::string_view name, Timeout timeout = std::nullopt);
  // Makes `name` resident (loading it if needed: the load timeout applies)
  // and pins it: never evicted, and UNLOAD refuses it until unpin(). Pins
  // belong to the daemon, not to this connection. pin_budget_exceeded if the
  // pinned adapters would pass the daemon's --pin-budget.
  Result<PinInfo> pin(std::string_view name, Timeout timeout = std::nullopt);
  // The same with a keep-alive (counted once the adapter is unpinned) and
  // the priority of the load it may start.
  Result<PinInfo> pin(std::string_view name, const LoadOptions& options,
                      Timeout timeout = std::nullopt);
  // Warms `name` for a later acquire: a low-priority load that takes free
  // room only (it never evicts a leased, pinned or used adapter) and never
  // waits for room; prefetch_dropped when it does not fit. A resident
  // adapter is a hit (was_resident). The load timeout applies.
  Result<LoadInfo> prefetch(std::string_view name, Timeout timeout = std::nullopt);
  // RELOAD: loads `name`'s current files as a new generation beside the one
  // in use and swaps it in once verified. Leases already taken keep the old
  // generation's bytes until they end; every acquire after the reply gets
  // the new one (Lease::generation(), Lease::digest()). A failed load
  // (invalid files, no room, ...) leaves the old generation serving and
  // returns its error. A name not resident is simply loaded. The load
  // timeout applies. docs/protocol.md, "reload".
  Result<ReloadInfo> reload(std::string_view name, Timeout timeout = std::nullopt);
  // PUBLISH: makes `config` (an adapter_config.json's bytes) and `weights`
  // (an adapter_model.safetensors') the adapter `name`, with no file: the
  // bytes are copied into two sealed memfds sent to genomed, which
  // validates them exactly as files (same parsers, limits, contract,
  // --base-model check) and swaps them in as RELOAD does; a name not
  // resident is loaded from them. Only genomed's own user (and those given
  // --publish-uid / --publish-gid) may publish: else permission_denied.
  // A name with a load in progress is `overloaded`. docs/protocol.md,
  // "publish".
  Result<ReloadInfo> publish(std::string_view name, std::span<const std::byte> config,
                             std::span<const std::byte> weights, Timeout timeout = std::nullopt);
  // The same from two memfds the caller made and sealed (F_SEAL_WRITE |
  // F_SEAL_SHRINK | F_SEAL_GROW): no copy. The caller keeps them.
  Result<ReloadInfo> publish_fds(std::string_view name, int config_fd, int weights_fd,
                                 Timeout timeout = std::nullopt);
  // Makes a pinned adapter evictable again; not_loaded if it is not resident.
  Result<PinInfo> unpin(std::string_view name, Timeout timeout = std::nullopt);
  // Every adapter the daemon holds or loads, in name order. The daemon
  // answers LIST in pages (1024 entries at most); this fetches them all,
  // within the one timeout. No name comes twice; one loaded or unloaded
  // meanwhile may or may not be listed.
  Result<std::vector<AdapterInfo>> list(Timeout timeout = std::nullopt);
  Result<Stats> stats(Timeout timeout = std::nullopt);
  Result<Health> health(Timeout timeout = std::nullopt);

  // True once a request (or writing a RELEASE) timed out, the daemon sent a
  // frame that breaks the protocol, or the connection was lost, and in a
  // child of fork() of the process that connected: every further request
  // fails with Errc::not_connected.
  bool broken() const;

  std::uint64_t arena_bytes() const;
  std::uint64_t daemon_pid() const;
  // The daemon's version string from its HELLO reply ("genomed 0.1.0").
  const std::string& server() const;
  // The whole arena as this client mapped it (read-only; every TensorView
  // lies inside it). Only leased ranges have defined contents. The mapping
  // lives while the Client or any Lease taken from it does (the Python
  // binding exposes it as Client.arena and a lease's offset within it).
  std::span<const std::byte> arena() const;

 private:
  explicit Client(std::shared_ptr<client_detail::Connection> conn);
  std::shared_ptr<client_detail::Connection> conn_;
};

}  // namespace genomed
