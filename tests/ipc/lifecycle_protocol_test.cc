// The wire form of the adapter lifecycle: PIN/UNPIN and their reply, the
// LIST fields they add, and how a reply of an older daemon (without them)
// decodes.
#include <gtest/gtest.h>

#include <string>

#include "ipc/protocol.h"
#include "ipc/wire.h"

namespace genomed::ipc {
namespace {

template <class T>
T ok_value(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : T{};
}

TEST(LifecycleProtocol, PinAndUnpinRoundTripTheirName) {
  for (Op op : {Op::pin, Op::unpin}) {
    const Request r = ok_value(decode_request(encode_request({.op = op, .names = {"org/m"}})));
    EXPECT_EQ(r.op, op) << op_name(op);
    EXPECT_EQ(r.names, std::vector<std::string>{"org/m"});
    EXPECT_EQ(op_from_name(op_name(op)), op);
  }
  EXPECT_EQ(op_name(Op::pin), "pin");
  EXPECT_EQ(op_name(Op::unpin), "unpin");
}

TEST(LifecycleProtocol, PinWithoutANameIsBadRequestNamingTheField) {
  MapWriter w;
  w.put("op", "pin");
  const auto r = decode_request(w.finish());
  ASSERT_EQ(r.code(), Errc::bad_request);
  EXPECT_NE(r.status().message().find("'name'"), std::string::npos) << r.status().message();
}

TEST(LifecycleProtocol, PinReplyRoundTrips) {
  const PinReply in{.name = "m", .bytes = 9024, .generation = 3, .pinned = true,
                    .was_pinned = false};
  const PinReply out = ok_value(decode_pin_reply(encode_reply(in)));
  EXPECT_EQ(out.name, "m");
  EXPECT_EQ(out.bytes, 9024u);
  EXPECT_EQ(out.generation, 3u);
  EXPECT_TRUE(out.pinned);
  EXPECT_FALSE(out.was_pinned);
  const Status refused = decode_pin_reply(encode_error(Status(Errc::pin_budget_exceeded, "x")))
                             .status();
  EXPECT_EQ(refused.code(), Errc::pin_budget_exceeded);
}

TEST(LifecycleProtocol, ListCarriesPinned) {
  ListReply in;
  in.adapters = {{.name = "a", .state = "ready", .bytes = 1, .pinned = true},
                 {.name = "b", .state = "ready", .bytes = 1, .pinned = false}};
  const ListReply out = ok_value(decode_list_reply(encode_reply(in)));
  ASSERT_EQ(out.adapters.size(), 2u);
  EXPECT_TRUE(out.adapters[0].pinned);
  EXPECT_FALSE(out.adapters[1].pinned);
}

TEST(LifecycleProtocol, AListEntryOfAnOlderDaemonDecodesUnpinned) {
  MapWriter entry;
  entry.put("name", "a")
      .put("state", "ready")
      .put("bytes", std::uint64_t{1})
      .put("leases", std::uint64_t{0})
      .put("generation", std::uint64_t{1});
  MapWriter w;
  w.put("ok", true).put_packed_array("adapters", {entry.finish()}).put_nil("next");
  const ListReply out = ok_value(decode_list_reply(w.finish()));
  ASSERT_EQ(out.adapters.size(), 1u);
  EXPECT_FALSE(out.adapters[0].pinned);
}

TEST(LifecycleProtocol, KeepAliveRidesOnLoadAcquireAndPinOnly) {
  for (Op op : {Op::load, Op::acquire, Op::pin}) {
    const Request r = ok_value(
        decode_request(encode_request({.op = op, .names = {"a"}, .keep_alive_ms = 30'000})));
    EXPECT_EQ(r.keep_alive_ms, std::optional<std::uint64_t>(30'000)) << op_name(op);
    const Request none = ok_value(decode_request(encode_request({.op = op, .names = {"a"}})));
    EXPECT_FALSE(none.keep_alive_ms.has_value()) << "absent: leave the adapter's as it is";
  }
  const Request zero = ok_value(
      decode_request(encode_request({.op = Op::load, .names = {"a"}, .keep_alive_ms = 0})));
  EXPECT_EQ(zero.keep_alive_ms, std::optional<std::uint64_t>(0)) << "0 (never) is sent";
  MapWriter unload;
  unload.put("op", "unload").put("name", "a").put("keep_alive", std::uint64_t{5});
  EXPECT_FALSE(ok_value(decode_request(unload.finish())).keep_alive_ms.has_value());
}

TEST(LifecycleProtocol, AKeepAliveOutOfRangeOrMistypedIsBadRequestNamingIt) {
  MapWriter big;
  big.put("op", "load").put("name", "a").put("keep_alive", kMaxKeepAliveMs + 1);
  auto r = decode_request(big.finish());
  ASSERT_EQ(r.code(), Errc::bad_request);
  EXPECT_NE(r.status().message().find("'keep_alive'"), std::string::npos);
  MapWriter text;
  text.put("op", "load").put("name", "a").put("keep_alive", "5m");
  r = decode_request(text.finish());
  ASSERT_EQ(r.code(), Errc::bad_request);
  EXPECT_NE(r.status().message().find("'keep_alive'"), std::string::npos);
}

TEST(LifecycleProtocol, ListCarriesIdleTimeAndExpiry) {
  ListReply in;
  in.adapters = {{.name = "a", .state = "ready", .idle_ms = 1500, .expires_in_ms = 28'500},
                 {.name = "b", .state = "ready", .idle_ms = 0}};
  const ListReply out = ok_value(decode_list_reply(encode_reply(in)));
  ASSERT_EQ(out.adapters.size(), 2u);
  EXPECT_EQ(out.adapters[0].idle_ms, 1500u);
  EXPECT_EQ(out.adapters[0].expires_in_ms, std::optional<std::uint64_t>(28'500));
  EXPECT_FALSE(out.adapters[1].expires_in_ms.has_value()) << "nil: never";
}

// genomectl draws its progress bar from these two: a reply with more filled
// than the total is not genomed's (the client reports protocol_error).
TEST(LifecycleProtocol, ListProgressPastItsTotalIsRefused) {
  ListReply in;
  in.adapters = {{.name = "a", .state = "loading", .fill_total = 100, .filled = 101}};
  const auto out = decode_list_reply(encode_reply(in));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("exceeds 'fill_total'"), std::string::npos)
      << out.status().to_string();
  in.adapters[0].filled = 100;
  EXPECT_EQ(ok_value(decode_list_reply(encode_reply(in))).adapters[0].filled, 100u);
}

TEST(LifecycleProtocol, PriorityAndPrefetchRoundTripAndDefault) {
  for (Priority p : {Priority::high, Priority::normal, Priority::low}) {
    const Request r = ok_value(
        decode_request(encode_request({.op = Op::acquire, .names = {"a"}, .priority = p})));
    EXPECT_EQ(r.priority, p) << priority_name(p);
  }
  const Request plain = ok_value(decode_request(encode_request({.op = Op::load, .names = {"a"}})));
  EXPECT_EQ(plain.priority, Priority::normal);
  EXPECT_FALSE(plain.prefetch);
  const Request prefetch = ok_value(
      decode_request(encode_request({.op = Op::load, .names = {"a"}, .prefetch = true})));
  EXPECT_TRUE(prefetch.prefetch);
  MapWriter acquire;  // prefetch is a LOAD flag: ignored elsewhere
  acquire.put("op", "acquire").put("names", std::vector<std::string>{"a"}).put("prefetch", true);
  EXPECT_FALSE(ok_value(decode_request(acquire.finish())).prefetch);
}

TEST(LifecycleProtocol, AnUnknownPriorityIsBadRequestNamingTheLevels) {
  MapWriter w;
  w.put("op", "load").put("name", "a").put("priority", "urgent");
  const auto r = decode_request(w.finish());
  ASSERT_EQ(r.code(), Errc::bad_request);
  EXPECT_NE(r.status().message().find("'priority'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("'urgent'"), std::string::npos) << r.status().message();
  MapWriter flag;
  flag.put("op", "load").put("name", "a").put("prefetch", "yes");
  EXPECT_EQ(decode_request(flag.finish()).code(), Errc::bad_request);
}

TEST(LifecycleProtocol, TheLifecycleCodesHaveTheirReservedNumbersAndNames) {
  EXPECT_EQ(static_cast<int>(Errc::pin_budget_exceeded), 57);
  EXPECT_EQ(static_cast<int>(Errc::pinned), 58);
  EXPECT_EQ(static_cast<int>(Errc::prefetch_dropped), 59);
  EXPECT_EQ(errc_name(Errc::pin_budget_exceeded), "pin_budget_exceeded");
  EXPECT_EQ(errc_name(Errc::pinned), "pinned");
  EXPECT_EQ(errc_name(Errc::prefetch_dropped), "prefetch_dropped");
}

}  // namespace
}  // namespace genomed::ipc
