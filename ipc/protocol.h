// The genomed wire protocol in one place: operations, requests, replies, and
// their encode/decode pairs. docs/protocol.md describes the same schema for
// people; a change here changes that page.
//
// Every frame body is one msgpack map. Requests carry "op". Replies carry
// "ok": true plus the operation's fields, or "ok": false with "code" (the
// numeric Errc), "error" (its name) and "message". RELEASE is one-way: it has
// no reply, so that acquire+release of a cached adapter costs one round trip.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "genomed/types.h"

namespace genomed::ipc {

inline constexpr std::uint32_t kProtocolVersion = 1;
// Names per batch ACQUIRE, leases per batch RELEASE.
inline constexpr std::size_t kMaxBatch = 64;
// Slots a page of lease slots may hold (the daemon offers kLeaseSlotsPerConnection).
inline constexpr std::uint32_t kMaxLeaseSlots = 4096;
inline constexpr std::uint32_t kLeaseSlotsPerConnection = 64;
// Entries per LIST reply at most. A name is at most 512 bytes, so a page is
// at most about 600 KB, far below kMaxReplyFrame however many adapters the
// daemon holds; clients follow `next` for the rest.
inline constexpr std::size_t kMaxListPage = 1024;

enum class Op : std::uint8_t {
  hello,
  load,
  acquire,
  release,
  unload,
  list,
  stats,
  health,
  pin,
  unpin,
  reload,  // swaps in the adapter's current files as a new generation (loader/generations.h)
  // Makes two sealed memfds that ride with the frame (SCM_RIGHTS: config,
  // then weights) the adapter `name`, swapped in as RELOAD swaps
  // (loader/published_adapter.h). Its reply is RELOAD's.
  publish,
};

std::string_view op_name(Op op);
std::optional<Op> op_from_name(std::string_view name);

struct Request {
  Op op = Op::hello;
  std::uint32_t version = 0;          // hello: the client's protocol version
  std::string client;                 // hello: a free-form client name, for logs
  // hello, optional: the client takes leases through a page of lease slots
  // (layout/lease_slot.h) if the daemon offers one.
  bool lease_slots = false;
  std::vector<std::string> names;     // load/unload/pin/unpin/reload/publish: exactly one; acquire: 1..kMaxBatch
  std::vector<std::uint64_t> leases;  // release: 1..kMaxBatch lease ids
  std::string after;                  // list: the page starts after this name ("" = first)
  std::uint32_t limit = 0;            // list: entries per page (0 = kMaxListPage)
  // load/acquire/pin, optional: idle time (ms) after which the adapters are
  // unloaded, 0 = never; absent = leave each adapter's keep-alive as it is.
  std::optional<std::uint64_t> keep_alive_ms;
  // load/acquire/pin, optional ("high" | "normal" | "low"): the job queue
  // serves higher first.
  Priority priority = Priority::normal;
  bool prefetch = false;  // load only, optional: a prefetch (low priority, free room only)
};
std::string_view priority_name(Priority p);
// The largest keep_alive a request may give: 365 days in ms.
inline constexpr std::uint64_t kMaxKeepAliveMs = 365ull * 24 * 3600 * 1000;

std::string encode_request(const Request& request);
// Strict: unknown op -> unknown_op; missing or mistyped fields -> bad_request;
// an adapter name that is not UTF-8 -> invalid_name (names are echoed back
// in msgpack str fields, which must hold UTF-8); a body that is not a
// msgpack map within limits -> malformed_frame.
Result<Request> decode_request(std::string_view body);

// ---- replies -----------------------------------------------------------------

struct HelloReply {
  std::uint32_t version = kProtocolVersion;
  std::string server;             // "genomed 0.1.0"
  std::uint64_t arena_bytes = 0;  // size of the arena whose read-only fd rides along
  std::uint64_t pid = 0;
  // Slots in the page of lease slots whose read-write fd rides along after
  // the arena's; 0 (absent): no page (not asked for, or none to spare).
  std::uint32_t lease_slots = 0;
};

struct LeaseGrant {
  std::string name;
  std::uint64_t lease = 0;       // id to RELEASE
  std::uint64_t offset = 0;      // of the adapter's range in the arena
  std::uint64_t length = 0;      // of the range
  std::uint64_t generation = 0;  // load generation of the resident copy
  std::string digest;  // its content digest, 32 hex digits; "" from older daemons
  // The lease is held through this slot of the connection's page (its count
  // is 1 for it): further leases on the adapter can be taken there, and
  // this one is given back there, not by RELEASE (layout/lease_slot.h).
  std::optional<std::uint32_t> slot;
  std::uint32_t slot_tag = 0;  // with `slot`: the grant's tag
};

struct AcquireReply {
  std::vector<LeaseGrant> grants;  // one per requested name, in request order
};

// LOAD, UNLOAD, LIST, STATS and HEALTH replies carry the public types.
using LoadReply = LoadInfo;
using UnloadReply = UnloadInfo;
using ReloadReply = ReloadInfo;
using PinReply = PinInfo;  // PIN and UNPIN
using AdapterStatus = AdapterInfo;
using HealthReply = Health;
// One page of the adapters, in name order. `next` is the name to pass as
// `after` for the next page; absent on the last page.
struct ListReply {
  std::vector<AdapterInfo> adapters;  // sorted by name
  std::optional<std::string> next;
};
struct StatsReply {
  Stats values;  // in a stable order
};

// The message is sent as printable() makes it (common/safe_text.h): one
// line of well-formed UTF-8, whatever a worker or a name put into it.
std::string encode_error(const Status& status);
std::string encode_reply(const HelloReply& r);
std::string encode_reply(const AcquireReply& r);
std::string encode_reply(const LoadReply& r);
std::string encode_reply(const UnloadReply& r);
std::string encode_reply(const ReloadReply& r);
std::string encode_reply(const PinReply& r);
std::string encode_reply(const ListReply& r);
std::string encode_reply(const StatsReply& r);
std::string encode_reply(const HealthReply& r);

// Each decoder returns the error the daemon sent (its code and message) when
// "ok" is false, and malformed_frame/bad_request if the reply is not one.
Result<HelloReply> decode_hello_reply(std::string_view body);
Result<AcquireReply> decode_acquire_reply(std::string_view body);
Result<LoadReply> decode_load_reply(std::string_view body);
Result<UnloadReply> decode_unload_reply(std::string_view body);
Result<ReloadReply> decode_reload_reply(std::string_view body);
Result<PinReply> decode_pin_reply(std::string_view body);
Result<ListReply> decode_list_reply(std::string_view body);
Result<StatsReply> decode_stats_reply(std::string_view body);
Result<HealthReply> decode_health_reply(std::string_view body);

}  // namespace genomed::ipc
