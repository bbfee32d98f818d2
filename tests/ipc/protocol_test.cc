#include "ipc/protocol.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ipc/wire.h"

namespace genomed::ipc {
namespace {

// ---- requests ---------------------------------------------------------------

Request decode_ok(const std::string& body) {
  auto r = decode_request(body);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : Request{};
}

TEST(ProtocolRequest, HelloRoundTrips) {
  const Request r =
      decode_ok(encode_request({.op = Op::hello, .version = 7, .client = "bench-client/1"}));
  EXPECT_EQ(r.op, Op::hello);
  EXPECT_EQ(r.version, 7u);
  EXPECT_EQ(r.client, "bench-client/1");
  EXPECT_TRUE(r.names.empty());
  EXPECT_TRUE(r.leases.empty());
}

TEST(ProtocolRequest, LoadAndUnloadRoundTripTheirName) {
  for (Op op : {Op::load, Op::unload}) {
    const Request r = decode_ok(encode_request({.op = op, .names = {"org/model-v2"}}));
    EXPECT_EQ(r.op, op) << op_name(op);
    EXPECT_EQ(r.names, std::vector<std::string>{"org/model-v2"});
    EXPECT_TRUE(r.leases.empty());
  }
}

TEST(ProtocolRequest, AcquireRoundTripsEveryNameInOrder) {
  const std::vector<std::string> names{"b", "a", "org/c", "a"};
  const Request r = decode_ok(encode_request({.op = Op::acquire, .names = names}));
  EXPECT_EQ(r.op, Op::acquire);
  EXPECT_EQ(r.names, names);
}

TEST(ProtocolRequest, AcquireOfExactlyMaxBatchNamesIsAccepted) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < kMaxBatch; ++i) names.push_back("n" + std::to_string(i));
  const Request r = decode_ok(encode_request({.op = Op::acquire, .names = names}));
  EXPECT_EQ(r.names, names);
}

TEST(ProtocolRequest, ReleaseRoundTripsEveryLease) {
  const std::vector<std::uint64_t> leases{1, 0xffffffffffffffffull, 42, 1ull << 40};
  const Request r = decode_ok(encode_request({.op = Op::release, .leases = leases}));
  EXPECT_EQ(r.op, Op::release);
  EXPECT_EQ(r.leases, leases);
}

TEST(ProtocolRequest, FieldlessOpsRoundTrip) {
  for (Op op : {Op::list, Op::stats, Op::health}) {
    const Request r = decode_ok(encode_request({.op = op}));
    EXPECT_EQ(r.op, op) << op_name(op);
    EXPECT_TRUE(r.names.empty());
    EXPECT_TRUE(r.leases.empty());
  }
}

TEST(ProtocolRequest, OpNamesRoundTrip) {
  for (Op op : {Op::hello, Op::load, Op::acquire, Op::release, Op::unload, Op::list, Op::stats,
                Op::health}) {
    EXPECT_EQ(op_from_name(op_name(op)), op) << op_name(op);
  }
  EXPECT_FALSE(op_from_name("HELLO").has_value());
  EXPECT_FALSE(op_from_name("").has_value());
}

void expect_error(const Result<Request>& r, Errc code, const std::string& mention) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(mention), std::string::npos)
      << "'" << r.status().message() << "' does not mention " << mention;
}

TEST(ProtocolRequest, UnknownOpIsUnknownOp) {
  MapWriter w;
  w.put("op", "frobnicate");
  expect_error(decode_request(w.finish()), Errc::unknown_op, "frobnicate");
}

TEST(ProtocolRequest, MissingOpIsBadRequestNamingOp) {
  MapWriter w;
  w.put("name", "a");
  expect_error(decode_request(w.finish()), Errc::bad_request, "'op'");
}

TEST(ProtocolRequest, OpOfWrongTypeIsBadRequestNamingOp) {
  MapWriter w;
  w.put("op", std::uint64_t{1});
  expect_error(decode_request(w.finish()), Errc::bad_request, "'op'");
}

// Names come back in msgpack str fields (grants, LIST, messages): one that
// is not UTF-8 is refused at decode, and the refusal does not echo its bytes.
TEST(ProtocolRequest, ANameThatIsNotUtf8IsInvalidNameAndIsNotEchoedRaw) {
  const std::string bad = "ok/\xff\xfe-\xc0\xaf";
  for (const Request& req :
       {Request{.op = Op::load, .names = {bad}}, Request{.op = Op::unload, .names = {bad}},
        Request{.op = Op::acquire, .names = {"fine", bad}}}) {
    SCOPED_TRACE(op_name(req.op));
    const auto r = decode_request(encode_request(req));
    expect_error(r, Errc::invalid_name, "UTF-8");
    EXPECT_NE(r.status().message().find("\\xff\\xfe"), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\xff'), std::string::npos) << "raw bytes echoed";
  }
  // Control characters are UTF-8: such a name decodes (it is escaped where logged).
  EXPECT_EQ(decode_ok(encode_request({.op = Op::load, .names = {"a\nb\x1b[2J"}})).names[0],
            "a\nb\x1b[2J");
}

TEST(ProtocolRequest, AnUnknownOpIsEchoedEscaped) {
  MapWriter w;
  w.put("op", "evil\n\xff");
  const auto r = decode_request(w.finish());
  expect_error(r, Errc::unknown_op, "'evil\\x0a\\xff'");
}

TEST(ProtocolRequest, ListTakesAnOptionalCursorAndPageLimit) {
  const Request first = decode_ok(encode_request({.op = Op::list}));
  EXPECT_EQ(first.after, "");
  EXPECT_EQ(first.limit, 0u);
  const Request next = decode_ok(encode_request({.op = Op::list, .after = "m/n", .limit = 5}));
  EXPECT_EQ(next.after, "m/n");
  EXPECT_EQ(next.limit, 5u);
  MapWriter huge;
  huge.put("op", "list").put("limit", std::uint64_t{1} << 40);
  EXPECT_EQ(decode_ok(huge.finish()).limit, kMaxListPage) << "a larger page is capped";
  MapWriter zero;
  zero.put("op", "list").put("limit", std::uint64_t{0});
  expect_error(decode_request(zero.finish()), Errc::bad_request, "'limit'");
  MapWriter typed;
  typed.put("op", "list").put("after", std::uint64_t{3});
  expect_error(decode_request(typed.finish()), Errc::bad_request, "'after'");
}

TEST(ProtocolRequest, MissingNameIsBadRequestNamingTheField) {
  for (const char* op : {"load", "unload"}) {
    MapWriter w;
    w.put("op", op);
    expect_error(decode_request(w.finish()), Errc::bad_request, "'name'");
  }
}

TEST(ProtocolRequest, NameOfWrongTypeIsBadRequestNamingTheFieldAndType) {
  MapWriter w;
  w.put("op", "load").put("name", std::uint64_t{5});
  const auto r = decode_request(w.finish());
  expect_error(r, Errc::bad_request, "'name'");
  EXPECT_NE(r.status().message().find("string"), std::string::npos) << r.status().message();
}

TEST(ProtocolRequest, HelloWithoutVersionIsBadRequestNamingVersion) {
  MapWriter w;
  w.put("op", "hello").put("client", "x");
  expect_error(decode_request(w.finish()), Errc::bad_request, "'version'");
}

TEST(ProtocolRequest, HelloWithNonStringClientIsBadRequestNamingClient) {
  MapWriter w;
  w.put("op", "hello").put("version", std::uint64_t{1}).put("client", true);
  expect_error(decode_request(w.finish()), Errc::bad_request, "'client'");
}

TEST(ProtocolRequest, AcquireNamesNotAnArrayIsBadRequestNamingNames) {
  MapWriter w;
  w.put("op", "acquire").put("names", "a");
  expect_error(decode_request(w.finish()), Errc::bad_request, "'names'");
}

TEST(ProtocolRequest, AcquireWithANonStringEntryIsBadRequestNamingTheIndex) {
  MapWriter w;
  w.put("op", "acquire").put("names", std::vector<std::uint64_t>{1, 2});
  expect_error(decode_request(w.finish()), Errc::bad_request, "names[0]");
}

TEST(ProtocolRequest, AcquireWithNoNamesIsBadRequest) {
  MapWriter w;
  w.put("op", "acquire").put("names", std::vector<std::string>{});
  expect_error(decode_request(w.finish()), Errc::bad_request, "'names'");
}

TEST(ProtocolRequest, AcquireWithMoreThanMaxBatchNamesIsBadRequest) {
  std::vector<std::string> names(kMaxBatch + 1, "a");
  expect_error(decode_request(encode_request({.op = Op::acquire, .names = names})),
               Errc::bad_request, "'names'");
}

TEST(ProtocolRequest, ReleaseWithNoLeasesOrTooManyIsBadRequest) {
  expect_error(decode_request(encode_request({.op = Op::release, .leases = {}})), Errc::bad_request,
               "'leases'");
  expect_error(decode_request(encode_request(
                   {.op = Op::release, .leases = std::vector<std::uint64_t>(kMaxBatch + 1, 1)})),
               Errc::bad_request, "'leases'");
}

TEST(ProtocolRequest, ReleaseWithANonIntegerLeaseIsBadRequestNamingTheIndex) {
  MapWriter w;
  w.put("op", "release").put("leases", std::vector<std::string>{"1"});
  expect_error(decode_request(w.finish()), Errc::bad_request, "leases[0]");
}

TEST(ProtocolRequest, TrailingBytesAfterTheMapAreMalformed) {
  const std::string body = encode_request({.op = Op::list}) + std::string("\xc0", 1);
  expect_error(decode_request(body), Errc::malformed_frame, "1 bytes");
}

TEST(ProtocolRequest, NonMapBodiesAreMalformed) {
  const std::vector<std::string> bodies{
      std::string("\x93\x01\x02\x03", 4),  // [1, 2, 3]
      std::string("\x2a", 1),              // 42
      std::string("\xa4list", 5),          // "list"
      std::string("\xc0", 1),              // nil
  };
  for (const auto& b : bodies) {
    const auto r = decode_request(b);
    EXPECT_EQ(r.code(), Errc::malformed_frame) << r.status().to_string();
  }
}

TEST(ProtocolRequest, EmptyAndTruncatedBodiesAreMalformed) {
  EXPECT_EQ(decode_request("").code(), Errc::malformed_frame);
  std::string body = encode_request({.op = Op::load, .names = {"some-adapter"}});
  body.pop_back();
  EXPECT_EQ(decode_request(body).code(), Errc::malformed_frame);
}

// Headers that claim 2^32-1 entries or bytes, with no data behind them, at
// the top level and as the value of "op".
std::vector<std::string> hostile_bodies() {
  const std::string claim_max("\xff\xff\xff\xff", 4);
  std::vector<std::string> out;
  for (char type : {'\xdd', '\xdf', '\xdb', '\xc6'}) {  // array32, map32, str32, bin32
    const std::string header = std::string(1, type) + claim_max;
    out.push_back(header);
    out.push_back(std::string("\x81\xa2op", 4) + header);
  }
  return out;
}

TEST(ProtocolRequest, HostileDeclaredSizesAreMalformedQuickly) {
  for (const auto& body : hostile_bodies()) {
    const auto start = std::chrono::steady_clock::now();
    const auto r = decode_request(body);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.code(), Errc::malformed_frame) << r.status().to_string();
    EXPECT_LT(took, std::chrono::seconds(1)) << "decode took too long for a hostile header";
  }
}

TEST(ProtocolReply, HostileDeclaredSizesAreMalformedQuickly) {
  for (const auto& body : hostile_bodies()) {
    const auto start = std::chrono::steady_clock::now();
    const auto r = decode_hello_reply(body);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.code(), Errc::malformed_frame) << r.status().to_string();
    EXPECT_LT(took, std::chrono::seconds(1));
  }
}

// {"op": "list", "x": [[[...nil...]]]} with `depth` nested arrays.
std::string nested_request(int depth) {
  std::string body("\x82\xa2op\xa4list\xa1x", 10);
  body.append(static_cast<std::size_t>(depth), '\x91');
  body.push_back('\xc0');
  return body;
}

TEST(ProtocolRequest, NestingUpToTheLimitIsAccepted) {
  // The root map plus max_depth - 1 arrays: max_depth levels in all.
  const auto r = decode_request(nested_request(static_cast<int>(kRequestLimits.max_depth) - 1));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->op, Op::list);
}

TEST(ProtocolRequest, NestingDeeperThanTheLimitIsMalformed) {
  const auto r = decode_request(nested_request(static_cast<int>(kRequestLimits.max_depth) + 1));
  EXPECT_EQ(r.code(), Errc::malformed_frame) << r.status().to_string();
  const auto deep = decode_request(nested_request(10000));
  EXPECT_EQ(deep.code(), Errc::malformed_frame) << deep.status().to_string();
}

TEST(ProtocolRequest, UnknownExtraFieldsAreIgnored) {
  MapWriter w;
  w.put("op", "load").put("name", "a").put("future_field", std::uint64_t{1});
  const auto r = decode_request(w.finish());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->names, std::vector<std::string>{"a"});
}

// ---- replies ----------------------------------------------------------------

template <class T>
T ok_value(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : T{};
}

TEST(ProtocolReply, HelloRoundTrips) {
  const HelloReply in{
      .version = 3, .server = "genomed 0.1.0", .arena_bytes = 8ull << 30, .pid = 4242};
  const HelloReply out = ok_value(decode_hello_reply(encode_reply(in)));
  EXPECT_EQ(out.version, 3u);
  EXPECT_EQ(out.server, "genomed 0.1.0");
  EXPECT_EQ(out.arena_bytes, 8ull << 30);
  EXPECT_EQ(out.pid, 4242u);
}

TEST(ProtocolReply, AcquireRoundTripsEveryGrantInOrder) {
  AcquireReply in;
  in.grants = {
      {.name = "b", .lease = 1, .offset = 0, .length = 4096, .generation = 1},
      {.name = "org/a",
       .lease = 0xffffffffffffffffull,
       .offset = 1ull << 33,
       .length = 64,
       .generation = 9},
      {.name = "c", .lease = 3, .offset = 128, .length = 1, .generation = 0},
  };
  const AcquireReply out = ok_value(decode_acquire_reply(encode_reply(in)));
  ASSERT_EQ(out.grants.size(), in.grants.size());
  for (std::size_t i = 0; i < in.grants.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(out.grants[i].name, in.grants[i].name);
    EXPECT_EQ(out.grants[i].lease, in.grants[i].lease);
    EXPECT_EQ(out.grants[i].offset, in.grants[i].offset);
    EXPECT_EQ(out.grants[i].length, in.grants[i].length);
    EXPECT_EQ(out.grants[i].generation, in.grants[i].generation);
  }
}

TEST(ProtocolReply, LoadRoundTrips) {
  for (bool was_resident : {false, true}) {
    const LoadReply in{
        .name = "org/m", .bytes = 123456789, .generation = 17, .was_resident = was_resident};
    const LoadReply out = ok_value(decode_load_reply(encode_reply(in)));
    EXPECT_EQ(out.name, "org/m");
    EXPECT_EQ(out.bytes, 123456789u);
    EXPECT_EQ(out.generation, 17u);
    EXPECT_EQ(out.was_resident, was_resident);
  }
}

TEST(ProtocolReply, UnloadRoundTrips) {
  const UnloadReply in{.name = "m", .outcome = "draining", .leases = 5};
  const UnloadReply out = ok_value(decode_unload_reply(encode_reply(in)));
  EXPECT_EQ(out.name, "m");
  EXPECT_EQ(out.outcome, "draining");
  EXPECT_EQ(out.leases, 5u);
}

TEST(ProtocolReply, ListRoundTripsEveryAdapter) {
  ListReply in;
  in.adapters = {
      {.name = "a", .state = "ready", .bytes = 1 << 20, .leases = 2, .generation = 1},
      {.name = "b", .state = "loading", .bytes = 0, .leases = 0, .generation = 0},
      {.name = "c/d", .state = "draining", .bytes = 77, .leases = 1, .generation = 4},
  };
  const ListReply out = ok_value(decode_list_reply(encode_reply(in)));
  ASSERT_EQ(out.adapters.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(out.adapters[i].name, in.adapters[i].name);
    EXPECT_EQ(out.adapters[i].state, in.adapters[i].state);
    EXPECT_EQ(out.adapters[i].bytes, in.adapters[i].bytes);
    EXPECT_EQ(out.adapters[i].leases, in.adapters[i].leases);
    EXPECT_EQ(out.adapters[i].generation, in.adapters[i].generation);
  }
}

TEST(ProtocolReply, EmptyListRoundTrips) {
  const ListReply out = ok_value(decode_list_reply(encode_reply(ListReply{})));
  EXPECT_TRUE(out.adapters.empty());
  EXPECT_FALSE(out.next.has_value());
}

TEST(ProtocolReply, ListCarriesTheNextCursorOnlyWhenMoreFollow) {
  ListReply in;
  in.adapters = {{.name = "a", .state = "ready"}};
  in.next = "a";
  EXPECT_EQ(ok_value(decode_list_reply(encode_reply(in))).next, std::optional<std::string>("a"));
  in.next.reset();
  EXPECT_FALSE(ok_value(decode_list_reply(encode_reply(in))).next.has_value());
}

// Whatever a message carries (a name, a worker's text quoting a file), the
// error reply is one line of well-formed UTF-8: strict decoders accept it.
TEST(ProtocolReply, AnErrorMessageIsSentAsPrintableUtf8) {
  const std::string body =
      encode_error(Status(Errc::not_found, "no adapter named 'x\xff\n' under /r"));
  const Status s = decode_load_reply(body).status();
  EXPECT_EQ(s.code(), Errc::not_found);
  EXPECT_EQ(s.message(), "no adapter named 'x\\xff\\x0a' under /r");
  const Status big =
      decode_load_reply(encode_error(Status(Errc::internal, std::string(1 << 20, 'm')))).status();
  EXPECT_LT(big.message().size(), 5000u) << "messages are cut";
}

TEST(ProtocolReply, StatsRoundTripIntAndStringValuesInOrder) {
  StatsReply in;
  in.values = {{"resident_bytes", StatValue{std::uint64_t{1} << 35}},
               {"version", StatValue{std::string("0.1.0")}},
               {"loads", StatValue{std::uint64_t{0}}},
               {"breaker", StatValue{std::string("closed")}}};
  const StatsReply out = ok_value(decode_stats_reply(encode_reply(in)));
  EXPECT_EQ(out.values, in.values);
}

TEST(ProtocolReply, StatsWithANonIntNonStringValueIsBadRequest) {
  MapWriter stats;
  stats.put("x", true);
  MapWriter w;
  w.put("ok", true).put_packed("stats", stats.finish());
  EXPECT_EQ(decode_stats_reply(w.finish()).code(), Errc::bad_request);
}

TEST(ProtocolReply, HealthRoundTrips) {
  for (bool healthy : {true, false}) {
    const HealthReply in{.healthy = healthy, .reason = healthy ? "" : "workers restart too often"};
    const HealthReply out = ok_value(decode_health_reply(encode_reply(in)));
    EXPECT_EQ(out.healthy, healthy);
    EXPECT_EQ(out.reason, in.reason);
  }
}

// Every reply decoder, as one that returns just the Status.
std::vector<std::pair<const char*, std::function<Status(std::string_view)>>> all_decoders() {
  return {
      {"hello", [](std::string_view b) { return decode_hello_reply(b).status(); }},
      {"acquire", [](std::string_view b) { return decode_acquire_reply(b).status(); }},
      {"load", [](std::string_view b) { return decode_load_reply(b).status(); }},
      {"unload", [](std::string_view b) { return decode_unload_reply(b).status(); }},
      {"list", [](std::string_view b) { return decode_list_reply(b).status(); }},
      {"stats", [](std::string_view b) { return decode_stats_reply(b).status(); }},
      {"health", [](std::string_view b) { return decode_health_reply(b).status(); }},
  };
}

TEST(ProtocolReply, EncodedErrorDecodesToTheSameCodeAndMessageInEveryDecoder) {
  for (Errc code : {Errc::bad_request, Errc::not_found, Errc::st_dtype_unknown, Errc::no_space,
                    Errc::worker_protocol, Errc::internal}) {
    const std::string message = "adapter 'x': " + std::string(errc_name(code)) + " \xe2\x9c\x97";
    const std::string body = encode_error(Status(code, message));
    for (const auto& [name, decode] : all_decoders()) {
      const Status s = decode(body);
      EXPECT_EQ(s.code(), code) << name << ": " << s.to_string();
      EXPECT_EQ(s.message(), message) << name;
    }
  }
}

TEST(ProtocolReply, ErrorReplyCarriesTheCodesName) {
  const auto m = Message::parse(encode_error(Status(Errc::no_space, "full")), kReplyLimits);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m->root().str("error"), "no_space");
  EXPECT_EQ(*m->root().u64("code"), 51u);
  EXPECT_FALSE(*m->root().boolean("ok"));
}

TEST(ProtocolReply, ErrorReplyWithAnUnknownCodeIsBadRequest) {
  for (std::uint64_t code : {std::uint64_t{0}, std::uint64_t{9}, std::uint64_t{98},
                             std::uint64_t{1000}, std::uint64_t{65536 + 1}}) {
    MapWriter w;
    w.put("ok", false).put("code", code).put("error", "mystery").put("message", "from the future");
    const std::string body = w.finish();
    for (const auto& [name, decode] : all_decoders()) {
      const Status s = decode(body);
      EXPECT_EQ(s.code(), Errc::bad_request) << name << " code " << code << ": " << s.to_string();
      EXPECT_NE(s.message().find("from the future"), std::string::npos) << s.message();
    }
  }
}

TEST(ProtocolReply, ReplyWithoutOkIsBadRequestAndNonMapIsMalformed) {
  MapWriter w;
  w.put("version", std::uint64_t{1});
  for (const auto& [name, decode] : all_decoders()) {
    EXPECT_EQ(decode(w.finish()).code(), Errc::bad_request) << name;
    EXPECT_EQ(decode(std::string("\x90", 1)).code(), Errc::malformed_frame) << name;
  }
}

TEST(ProtocolReply, OkReplyMissingAFieldIsBadRequestNamingIt) {
  MapWriter w;
  w.put("ok", true).put("name", "m").put("bytes", std::uint64_t{1}).put("was_resident", false);
  const auto r = decode_load_reply(w.finish());
  EXPECT_EQ(r.code(), Errc::bad_request);
  EXPECT_NE(r.status().message().find("'generation'"), std::string::npos) << r.status().message();
}

// ---- error codes ------------------------------------------------------------

TEST(ErrcNames, EveryNamedValueRoundTripsThroughNameAndInt) {
  std::set<std::string_view> names;
  int named = 0;
  for (std::uint64_t v = 0; v <= 99; ++v) {
    const auto code = errc_from_int(v);
    if (!code) {
      EXPECT_EQ(errc_name(static_cast<Errc>(v)), "unknown") << v;
      continue;
    }
    ++named;
    EXPECT_EQ(static_cast<std::uint64_t>(*code), v);
    const std::string_view name = errc_name(*code);
    EXPECT_NE(name, "unknown") << v;
    EXPECT_FALSE(name.empty()) << v;
    EXPECT_EQ(errc_from_name(name), code) << name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(named));
  EXPECT_GE(named, 40);  // the vocabulary is not empty by accident
  EXPECT_FALSE(errc_from_int(100).has_value());
  EXPECT_FALSE(errc_from_int(1ull << 32).has_value());
  EXPECT_FALSE(errc_from_name("unknown").has_value());
  EXPECT_FALSE(errc_from_name("").has_value());
}

TEST(ErrcNames, EveryEnumeratorInErrcHeaderHasItsOwnName) {
  // The header from the source tree (tests/CMakeLists.txt), not from
  // __FILE__: ccache's base_dir makes that relative.
  const std::string header = GENOMED_SOURCE_DIR "/include/genomed/errc.h";
  std::ifstream in(header);
  ASSERT_TRUE(in.good()) << header;
  std::stringstream text;
  text << in.rdbuf();
  const std::string src = text.str();
  const std::regex enumerator(R"(\n\s*([a-z_0-9]+)\s*=\s*([0-9]+)\s*,)");
  int seen = 0;
  for (auto it = std::sregex_iterator(src.begin(), src.end(), enumerator);
       it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    const std::uint64_t value = std::stoull((*it)[2]);
    ++seen;
    const auto code = errc_from_int(value);
    ASSERT_TRUE(code.has_value()) << name << " = " << value << " has no entry in the name table";
    EXPECT_EQ(errc_name(*code), name) << value;
    EXPECT_EQ(errc_from_name(name), code) << name;
  }
  EXPECT_GE(seen, 40);
}

}  // namespace
}  // namespace genomed::ipc
