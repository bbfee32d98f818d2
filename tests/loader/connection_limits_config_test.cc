// The per-connection limits' flags and config keys: leases and pipelined
// requests per connection, lease slots, connections per uid (operations.md,
// "Per-connection limits").
#include <gtest/gtest.h>

#include "config_parse.h"
#include "loader/config.h"

namespace genomed::loader {
namespace {

using config_test::expect_bad;
using config_test::JsonFile;
using config_test::kRequired;
using config_test::parse_ok;
using config_test::with_required;

TEST(ConfigFlags, PerConnectionCapsHaveTheirDocumentedDefaultsFlagsAndKeys) {
  const DaemonConfig defaults = parse_ok(kRequired);
  EXPECT_EQ(defaults.coordinator.max_leases_per_connection, 4096u);
  EXPECT_EQ(defaults.connections.max_pipelined_requests, 16u);
  const DaemonConfig flags = parse_ok(
      with_required({"--max-leases-per-connection", "7", "--max-pipelined-requests", "3"}));
  EXPECT_EQ(flags.coordinator.max_leases_per_connection, 7u);
  EXPECT_EQ(flags.connections.max_pipelined_requests, 3u);
  JsonFile file(R"({"socket": "s", "root": ["r"], "max_leases_per_connection": 9,
                    "max_pipelined_requests": 2})");
  const DaemonConfig keys = parse_ok({"--config", file.path()});
  EXPECT_EQ(keys.coordinator.max_leases_per_connection, 9u);
  EXPECT_EQ(keys.connections.max_pipelined_requests, 2u);
  expect_bad(with_required({"--max-leases-per-connection", "0"}), "--max-leases-per-connection");
  expect_bad(with_required({"--max-pipelined-requests", "0"}), "--max-pipelined-requests");
}

TEST(ConfigFlags, LeaseSlotsDefaultTo64AndZeroOffersNone) {
  EXPECT_EQ(parse_ok(kRequired).connections.lease_slots, 64u);
  EXPECT_EQ(parse_ok(with_required({"--lease-slots", "0"})).connections.lease_slots, 0u);
  JsonFile file(R"({"socket": "s", "root": ["r"], "lease_slots": 8})");
  EXPECT_EQ(parse_ok({"--config", file.path()}).connections.lease_slots, 8u);
  expect_bad(with_required({"--lease-slots", "4097"}), "--lease-slots");
}

// Connections holding leases are never closed for room: one uid holding a
// lease on every connection kept every other uid out. By default a uid may
// hold three quarters of them, whatever order --max-connections and the
// file come in.
TEST(ConfigFlags, ConnectionsPerUidDefaultToThreeQuartersOfTheConnections) {
  EXPECT_EQ(parse_ok(kRequired).connections.max_connections_per_uid, 768u);
  EXPECT_EQ(parse_ok(with_required({"--max-connections", "8"})).connections.max_connections_per_uid,
            6u);
  EXPECT_EQ(parse_ok(with_required({"--max-connections", "7"})).connections.max_connections_per_uid,
            5u)
      << "rounded down";
  EXPECT_EQ(default_max_connections_per_uid(1), 1u) << "at least one";
  EXPECT_EQ(default_max_connections_per_uid(2), 1u);
  EXPECT_EQ(default_max_connections_per_uid(1 << 20), 3u << 18);
  EXPECT_EQ(parse_ok(with_required({"--max-connections-per-uid", "0"}))
                .connections.max_connections_per_uid,
            0u)
      << "0: no per-uid limit, asked for";
  JsonFile file(R"({"socket": "s", "root": ["r"], "max_connections": 40})");
  EXPECT_EQ(parse_ok({"--config", file.path()}).connections.max_connections_per_uid, 30u);
  EXPECT_EQ(parse_ok({"--config", file.path(), "--max-connections", "100"})
                .connections.max_connections_per_uid,
            75u);
  EXPECT_EQ(parse_ok({"--config", file.path(), "--max-connections-per-uid", "3"})
                .connections.max_connections_per_uid,
            3u);
  JsonFile key(R"({"socket": "s", "root": ["r"], "max_connections_per_uid": 9})");
  EXPECT_EQ(parse_ok({"--config", key.path()}).connections.max_connections_per_uid, 9u);
  expect_bad(with_required({"--max-connections-per-uid", "-1"}), "--max-connections-per-uid");
  expect_bad(with_required({"--max-connections-per-uid", "2000000"}), "--max-connections-per-uid");
  JsonFile text(R"({"socket": "s", "root": ["r"], "max_connections_per_uid": "9"})");
  expect_bad({"--config", text.path()}, "'max_connections_per_uid' must be an integer");
}

}  // namespace
}  // namespace genomed::loader
