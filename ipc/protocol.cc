#include "ipc/protocol.h"

#include <algorithm>
#include <array>

#include "common/safe_text.h"
#include "ipc/wire.h"

namespace genomed::ipc {
namespace {

constexpr std::array<std::pair<Op, std::string_view>, 12> kOps{{
    {Op::hello, "hello"},
    {Op::load, "load"},
    {Op::acquire, "acquire"},
    {Op::release, "release"},
    {Op::unload, "unload"},
    {Op::list, "list"},
    {Op::stats, "stats"},
    {Op::health, "health"},
    {Op::pin, "pin"},
    {Op::unpin, "unpin"},
    {Op::reload, "reload"},
    {Op::publish, "publish"},
}};

MapWriter& ok_reply(MapWriter& w) { return w.put("ok", true); }

// Parses a reply and turns "ok": false into the Status the daemon sent.
Result<Message> parse_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, Message::parse(body, kReplyLimits));
  GENOMED_ASSIGN_OR_RETURN(bool ok, m.root().boolean("ok"));
  if (!ok) {
    GENOMED_ASSIGN_OR_RETURN(std::uint64_t code, m.root().u64("code"));
    GENOMED_ASSIGN_OR_RETURN(std::string message, m.root().str("message"));
    const auto errc = errc_from_int(code);
    if (!errc || *errc == Errc::ok) {
      return Status(Errc::bad_request,
                    "daemon sent unknown error code " + std::to_string(code) + ": " + message);
    }
    return Status(*errc, std::move(message));
  }
  return m;
}

Result<std::vector<std::string>> string_list(const MapView& m, std::string_view key,
                                             std::size_t max) {
  GENOMED_ASSIGN_OR_RETURN(ArrayView a, m.array(key));
  if (a.size() == 0 || a.size() > max) {
    return Status(Errc::bad_request, "field '" + std::string(key) + "': expected 1.." +
                                         std::to_string(max) + " entries, got " +
                                         std::to_string(a.size()));
  }
  return a.strings();
}

// Names come back in replies (grants, LIST, error messages) as msgpack str,
// which strict decoders accept only as UTF-8: a name that is not is refused
// here, before it reaches any reply or log.
Status check_utf8_name(std::string_view field, const std::string& name) {
  if (is_utf8(name)) return Status::Ok();
  return Status(Errc::invalid_name,
                "field '" + std::string(field) +
                    "': adapter names are UTF-8 text; this one is not: " + quote(name));
}

// The optional fields of LOAD, ACQUIRE and PIN; ignored on other ops.
Status decode_load_options(const MapView& root, Request* r) {
  if (r->op != Op::load && r->op != Op::acquire && r->op != Op::pin) return Status::Ok();
  if (root.has("keep_alive")) {
    GENOMED_ASSIGN_OR_RETURN(std::uint64_t ms, root.u64("keep_alive"));
    if (ms > kMaxKeepAliveMs) {
      return Status(Errc::bad_request, "field 'keep_alive': at most " +
                                           std::to_string(kMaxKeepAliveMs) +
                                           " ms (365 days), got " + std::to_string(ms));
    }
    r->keep_alive_ms = ms;
  }
  if (root.has("priority")) {
    GENOMED_ASSIGN_OR_RETURN(std::string text, root.str("priority"));
    bool known = false;
    for (Priority p : {Priority::high, Priority::normal, Priority::low}) {
      if (text == priority_name(p)) {
        r->priority = p;
        known = true;
      }
    }
    if (!known) {
      return Status(Errc::bad_request, "field 'priority': expected \"high\", \"normal\" or "
                                       "\"low\", got " + quote(text));
    }
  }
  if (r->op == Op::load && root.has("prefetch")) {
    GENOMED_ASSIGN_OR_RETURN(r->prefetch, root.boolean("prefetch"));
  }
  return Status::Ok();
}

// The optional `digest` of a grant, LOAD, PIN or LIST entry: 32 lowercase
// hex digits (layout/content_digest.h); absent from older daemons and from
// entries still loading: left empty.
Status read_digest(const MapView& m, std::string* digest, const char* key = "digest") {
  if (!m.has(key)) return Status::Ok();
  GENOMED_ASSIGN_OR_RETURN(std::string d, m.str(key));
  const bool hex = d.size() == 32 && d.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) {
    return Status(Errc::bad_request, std::string("field '") + key +
                                         "': expected 32 lowercase hex digits, got " + quote(d));
  }
  *digest = std::move(d);
  return Status::Ok();
}

MapWriter& put_digest(MapWriter& w, const std::string& digest) {
  if (!digest.empty()) w.put("digest", digest);
  return w;
}

}  // namespace

std::string_view priority_name(Priority p) {
  switch (p) {
    case Priority::high:
      return "high";
    case Priority::low:
      return "low";
    case Priority::normal:
      break;
  }
  return "normal";
}

std::string_view op_name(Op op) {
  for (const auto& [o, n] : kOps) {
    if (o == op) return n;
  }
  return "unknown";
}

std::optional<Op> op_from_name(std::string_view name) {
  for (const auto& [o, n] : kOps) {
    if (n == name) return o;
  }
  return std::nullopt;
}

std::string encode_request(const Request& r) {
  MapWriter w;
  w.put("op", op_name(r.op));
  switch (r.op) {
    case Op::hello:
      w.put("version", r.version).put("client", r.client);
      if (r.lease_slots) w.put("lease_slots", true);
      break;
    case Op::load:
    case Op::unload:
    case Op::pin:
    case Op::unpin:
    case Op::reload:
    case Op::publish:
      w.put("name", r.names.empty() ? std::string() : r.names.front());
      break;
    case Op::acquire:
      w.put("names", r.names);
      break;
    case Op::release:
      w.put("leases", r.leases);
      break;
    case Op::list:
      if (!r.after.empty()) w.put("after", r.after);
      if (r.limit != 0) w.put("limit", r.limit);
      break;
    case Op::stats:
    case Op::health:
      break;
  }
  if (r.op == Op::load || r.op == Op::acquire || r.op == Op::pin) {
    if (r.keep_alive_ms) w.put("keep_alive", *r.keep_alive_ms);
    if (r.priority != Priority::normal) w.put("priority", priority_name(r.priority));
    if (r.prefetch && r.op == Op::load) w.put("prefetch", true);
  }
  return w.finish();
}

Result<Request> decode_request(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, Message::parse(body, kRequestLimits));
  const MapView root = m.root();
  GENOMED_ASSIGN_OR_RETURN(std::string op_text, root.str("op"));
  const auto op = op_from_name(op_text);
  if (!op) return Status(Errc::unknown_op, "unknown operation " + quote(op_text));
  Request r;
  r.op = *op;
  switch (r.op) {
    case Op::hello: {
      GENOMED_ASSIGN_OR_RETURN(std::uint64_t version, root.u64("version"));
      r.version = static_cast<std::uint32_t>(std::min<std::uint64_t>(version, UINT32_MAX));
      if (root.has("client")) {
        GENOMED_ASSIGN_OR_RETURN(r.client, root.str("client"));
      }
      if (root.has("lease_slots")) {
        GENOMED_ASSIGN_OR_RETURN(r.lease_slots, root.boolean("lease_slots"));
      }
      break;
    }
    case Op::load:
    case Op::unload:
    case Op::pin:
    case Op::unpin:
    case Op::reload:
    case Op::publish: {
      GENOMED_ASSIGN_OR_RETURN(std::string name, root.str("name"));
      GENOMED_RETURN_IF_ERROR(check_utf8_name("name", name));
      r.names.push_back(std::move(name));
      break;
    }
    case Op::acquire: {
      GENOMED_ASSIGN_OR_RETURN(r.names, string_list(root, "names", kMaxBatch));
      for (std::size_t i = 0; i < r.names.size(); ++i) {
        GENOMED_RETURN_IF_ERROR(check_utf8_name("names[" + std::to_string(i) + "]", r.names[i]));
      }
      break;
    }
    case Op::release: {
      GENOMED_ASSIGN_OR_RETURN(ArrayView a, root.array("leases"));
      if (a.size() == 0 || a.size() > kMaxBatch) {
        return Status(Errc::bad_request,
                      "field 'leases': expected 1.." + std::to_string(kMaxBatch) + " entries");
      }
      for (std::size_t i = 0; i < a.size(); ++i) {
        GENOMED_ASSIGN_OR_RETURN(std::uint64_t id, a.u64_at(i));
        r.leases.push_back(id);
      }
      break;
    }
    case Op::list: {
      if (root.has("after")) {
        GENOMED_ASSIGN_OR_RETURN(r.after, root.str("after"));
      }
      if (root.has("limit")) {
        GENOMED_ASSIGN_OR_RETURN(std::uint64_t limit, root.u64("limit"));
        if (limit == 0) return Status(Errc::bad_request, "field 'limit': expected at least 1");
        r.limit = static_cast<std::uint32_t>(std::min<std::uint64_t>(limit, kMaxListPage));
      }
      break;
    }
    case Op::stats:
    case Op::health:
      break;
  }
  GENOMED_RETURN_IF_ERROR(decode_load_options(root, &r));
  return r;
}

std::string encode_error(const Status& s) {
  MapWriter w;
  w.put("ok", false)
      .put("code", static_cast<std::uint64_t>(s.code()))
      .put("error", errc_name(s.code()))
      .put("message", printable(s.message()));
  return w.finish();
}

std::string encode_reply(const HelloReply& r) {
  MapWriter w;
  ok_reply(w)
      .put("version", r.version)
      .put("server", r.server)
      .put("arena_bytes", r.arena_bytes)
      .put("pid", r.pid);
  if (r.lease_slots > 0) w.put("lease_slots", r.lease_slots);
  return w.finish();
}

std::string encode_reply(const AcquireReply& r) {
  std::vector<std::string> grants;
  grants.reserve(r.grants.size());
  for (const auto& g : r.grants) {
    MapWriter gw;
    gw.put("name", g.name)
        .put("lease", g.lease)
        .put("offset", g.offset)
        .put("length", g.length)
        .put("generation", g.generation);
    put_digest(gw, g.digest);
    if (g.slot) gw.put("slot", *g.slot).put("slot_tag", g.slot_tag);
    grants.push_back(gw.finish());
  }
  MapWriter w;
  ok_reply(w).put_packed_array("grants", grants);
  return w.finish();
}

std::string encode_reply(const LoadReply& r) {
  MapWriter w;
  ok_reply(w)
      .put("name", r.name)
      .put("bytes", r.bytes)
      .put("generation", r.generation)
      .put("was_resident", r.was_resident);
  put_digest(w, r.digest);
  return w.finish();
}

std::string encode_reply(const ReloadReply& r) {
  MapWriter w;
  ok_reply(w)
      .put("name", r.name)
      .put("bytes", r.bytes)
      .put("generation", r.generation)
      .put("digest", r.digest)
      .put("previous_generation", r.previous_generation);
  w.put("previous_leases", r.previous_leases);
  if (!r.previous_digest.empty()) w.put("previous_digest", r.previous_digest);
  return w.finish();
}

std::string encode_reply(const UnloadReply& r) {
  MapWriter w;
  ok_reply(w).put("name", r.name).put("outcome", r.outcome).put("leases", r.leases);
  return w.finish();
}

std::string encode_reply(const PinReply& r) {
  MapWriter w;
  ok_reply(w)
      .put("name", r.name)
      .put("bytes", r.bytes)
      .put("generation", r.generation)
      .put("pinned", r.pinned)
      .put("was_pinned", r.was_pinned);
  put_digest(w, r.digest);
  return w.finish();
}

std::string encode_reply(const ListReply& r) {
  std::vector<std::string> adapters;
  adapters.reserve(r.adapters.size());
  for (const auto& a : r.adapters) {
    MapWriter aw;
    aw.put("name", a.name)
        .put("state", a.state)
        .put("bytes", a.bytes)
        .put("leases", a.leases)
        .put("generation", a.generation)
        .put("pinned", a.pinned)
        .put("idle_ms", a.idle_ms);
    put_digest(aw, a.digest);
    if (a.state == "loading") aw.put("fill_total", a.fill_total).put("filled", a.filled);
    if (a.expires_in_ms)
      aw.put("expires_in_ms", *a.expires_in_ms);
    else
      aw.put_nil("expires_in_ms");
    adapters.push_back(aw.finish());
  }
  MapWriter w;
  ok_reply(w).put_packed_array("adapters", adapters);
  if (r.next)
    w.put("next", *r.next);
  else
    w.put_nil("next");
  return w.finish();
}

std::string encode_reply(const StatsReply& r) {
  MapWriter stats;
  for (const auto& [key, value] : r.values) {
    if (const auto* n = std::get_if<std::uint64_t>(&value))
      stats.put(key, *n);
    else
      stats.put(key, std::get<std::string>(value));
  }
  MapWriter w;
  ok_reply(w).put_packed("stats", stats.finish());
  return w.finish();
}

std::string encode_reply(const HealthReply& r) {
  MapWriter w;
  ok_reply(w).put("healthy", r.healthy).put("reason", r.reason).put("saturated", r.saturated);
  return w.finish();
}

Result<HelloReply> decode_hello_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  HelloReply r;
  GENOMED_ASSIGN_OR_RETURN(std::uint64_t version, m.root().u64("version"));
  r.version = static_cast<std::uint32_t>(version);
  GENOMED_ASSIGN_OR_RETURN(r.server, m.root().str("server"));
  GENOMED_ASSIGN_OR_RETURN(r.arena_bytes, m.root().u64("arena_bytes"));
  GENOMED_ASSIGN_OR_RETURN(r.pid, m.root().u64("pid"));
  if (m.root().has("lease_slots")) {
    GENOMED_ASSIGN_OR_RETURN(std::uint64_t slots, m.root().u64("lease_slots"));
    if (slots == 0 || slots > kMaxLeaseSlots) {
      return Status(Errc::bad_request, "field 'lease_slots': expected 1.." +
                                           std::to_string(kMaxLeaseSlots) + ", got " +
                                           std::to_string(slots));
    }
    r.lease_slots = static_cast<std::uint32_t>(slots);
  }
  return r;
}

Result<AcquireReply> decode_acquire_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  GENOMED_ASSIGN_OR_RETURN(ArrayView a, m.root().array("grants"));
  AcquireReply r;
  for (std::size_t i = 0; i < a.size(); ++i) {
    GENOMED_ASSIGN_OR_RETURN(MapView g, a.map_at(i));
    LeaseGrant grant;
    GENOMED_ASSIGN_OR_RETURN(grant.name, g.str("name"));
    GENOMED_ASSIGN_OR_RETURN(grant.lease, g.u64("lease"));
    GENOMED_ASSIGN_OR_RETURN(grant.offset, g.u64("offset"));
    GENOMED_ASSIGN_OR_RETURN(grant.length, g.u64("length"));
    GENOMED_ASSIGN_OR_RETURN(grant.generation, g.u64("generation"));
    GENOMED_RETURN_IF_ERROR(read_digest(g, &grant.digest));
    if (g.has("slot")) {
      GENOMED_ASSIGN_OR_RETURN(std::uint64_t slot, g.u64("slot"));
      GENOMED_ASSIGN_OR_RETURN(std::uint64_t tag, g.u64("slot_tag"));
      if (slot >= kMaxLeaseSlots || tag == 0 || tag > 0xffffff) {
        return Status(Errc::bad_request, "grant of " + quote(grant.name) + ": slot " +
                                              std::to_string(slot) + " tag " +
                                              std::to_string(tag) + " out of range");
      }
      grant.slot = static_cast<std::uint32_t>(slot);
      grant.slot_tag = static_cast<std::uint32_t>(tag);
    }
    r.grants.push_back(std::move(grant));
  }
  return r;
}

Result<LoadReply> decode_load_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  LoadReply r;
  GENOMED_ASSIGN_OR_RETURN(r.name, m.root().str("name"));
  GENOMED_ASSIGN_OR_RETURN(r.bytes, m.root().u64("bytes"));
  GENOMED_ASSIGN_OR_RETURN(r.generation, m.root().u64("generation"));
  GENOMED_ASSIGN_OR_RETURN(r.was_resident, m.root().boolean("was_resident"));
  GENOMED_RETURN_IF_ERROR(read_digest(m.root(), &r.digest));
  return r;
}

Result<ReloadReply> decode_reload_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  ReloadReply r;
  GENOMED_ASSIGN_OR_RETURN(r.name, m.root().str("name"));
  GENOMED_ASSIGN_OR_RETURN(r.bytes, m.root().u64("bytes"));
  GENOMED_ASSIGN_OR_RETURN(r.generation, m.root().u64("generation"));
  GENOMED_RETURN_IF_ERROR(read_digest(m.root(), &r.digest));
  GENOMED_ASSIGN_OR_RETURN(r.previous_generation, m.root().u64("previous_generation"));
  GENOMED_ASSIGN_OR_RETURN(r.previous_leases, m.root().u64("previous_leases"));
  GENOMED_RETURN_IF_ERROR(read_digest(m.root(), &r.previous_digest, "previous_digest"));
  return r;
}

Result<UnloadReply> decode_unload_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  UnloadReply r;
  GENOMED_ASSIGN_OR_RETURN(r.name, m.root().str("name"));
  GENOMED_ASSIGN_OR_RETURN(r.outcome, m.root().str("outcome"));
  GENOMED_ASSIGN_OR_RETURN(r.leases, m.root().u64("leases"));
  return r;
}

Result<PinReply> decode_pin_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  PinReply r;
  GENOMED_ASSIGN_OR_RETURN(r.name, m.root().str("name"));
  GENOMED_ASSIGN_OR_RETURN(r.bytes, m.root().u64("bytes"));
  GENOMED_ASSIGN_OR_RETURN(r.generation, m.root().u64("generation"));
  GENOMED_ASSIGN_OR_RETURN(r.pinned, m.root().boolean("pinned"));
  GENOMED_ASSIGN_OR_RETURN(r.was_pinned, m.root().boolean("was_pinned"));
  GENOMED_RETURN_IF_ERROR(read_digest(m.root(), &r.digest));
  return r;
}

Result<ListReply> decode_list_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  GENOMED_ASSIGN_OR_RETURN(ArrayView a, m.root().array("adapters"));
  ListReply r;
  for (std::size_t i = 0; i < a.size(); ++i) {
    GENOMED_ASSIGN_OR_RETURN(MapView e, a.map_at(i));
    AdapterStatus s;
    GENOMED_ASSIGN_OR_RETURN(s.name, e.str("name"));
    GENOMED_ASSIGN_OR_RETURN(s.state, e.str("state"));
    GENOMED_ASSIGN_OR_RETURN(s.bytes, e.u64("bytes"));
    GENOMED_ASSIGN_OR_RETURN(s.leases, e.u64("leases"));
    GENOMED_ASSIGN_OR_RETURN(s.generation, e.u64("generation"));
    GENOMED_RETURN_IF_ERROR(read_digest(e, &s.digest));
    if (e.has("pinned")) {  // absent from daemons older than PIN
      GENOMED_ASSIGN_OR_RETURN(s.pinned, e.boolean("pinned"));
    }
    if (e.has("idle_ms")) {  // absent from daemons older than idle unload
      GENOMED_ASSIGN_OR_RETURN(s.idle_ms, e.u64("idle_ms"));
    }
    if (e.has("fill_total")) {  // loading entries of daemons with progress
      GENOMED_ASSIGN_OR_RETURN(s.fill_total, e.u64("fill_total"));
      GENOMED_ASSIGN_OR_RETURN(s.filled, e.u64("filled"));
      if (s.filled > s.fill_total) {  // a progress bar would run past its end
        return Status(Errc::bad_request, "adapter '" + s.name + "': 'filled' (" +
                                             std::to_string(s.filled) + ") exceeds 'fill_total' (" +
                                             std::to_string(s.fill_total) + ")");
      }
    }
    if (e.has("expires_in_ms") && !e.is_nil("expires_in_ms")) {
      GENOMED_ASSIGN_OR_RETURN(s.expires_in_ms, e.u64("expires_in_ms"));
    }
    r.adapters.push_back(std::move(s));
  }
  if (m.root().has("next") && !m.root().is_nil("next")) {
    GENOMED_ASSIGN_OR_RETURN(r.next, m.root().str("next"));
  }
  return r;
}

Result<StatsReply> decode_stats_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  GENOMED_ASSIGN_OR_RETURN(MapView stats, m.root().map("stats"));
  StatsReply r;
  const auto& raw = stats.raw();
  for (std::uint32_t i = 0; i < raw.size; ++i) {
    const auto& k = raw.ptr[i].key;
    const auto& v = raw.ptr[i].val;
    if (k.type != msgpack::type::STR)
      return Status(Errc::bad_request, "stats: a key is not a string");
    std::string key(k.via.str.ptr, k.via.str.size);
    if (v.type == msgpack::type::POSITIVE_INTEGER) {
      r.values.emplace_back(std::move(key), v.via.u64);
    } else if (v.type == msgpack::type::STR) {
      r.values.emplace_back(std::move(key), std::string(v.via.str.ptr, v.via.str.size));
    } else {
      return Status(Errc::bad_request, "stats: '" + key + "' is a " + std::string(type_name(v)));
    }
  }
  return r;
}

Result<HealthReply> decode_health_reply(std::string_view body) {
  GENOMED_ASSIGN_OR_RETURN(Message m, parse_reply(body));
  HealthReply r;
  GENOMED_ASSIGN_OR_RETURN(r.healthy, m.root().boolean("healthy"));
  GENOMED_ASSIGN_OR_RETURN(r.reason, m.root().str("reason"));
  if (m.root().has("saturated")) {  // absent from daemons older than the field
    GENOMED_ASSIGN_OR_RETURN(r.saturated, m.root().boolean("saturated"));
  }
  return r;
}

}  // namespace genomed::ipc
