// Content identity with the real daemon and workers: the digest a lease, a
// LOAD, a PIN, LIST and genomectl report is the same for the same files
// under any name and in any generation, and differs when a tensor's bytes,
// dtype, shape or names, or a config field, differ (issue 23).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

const fixture::AdapterSpec kBase{.rank = 8, .layers = 2, .hidden = 64, .seed = 3};

std::string digest_of(Client& client, const std::string& name) {
  auto lease = client.acquire(name);
  EXPECT_TRUE(lease.ok()) << name << ": " << lease.status().to_string();
  return lease.ok() ? lease->digest() : std::string();
}

TEST(ContentDigest, SameFilesHaveOneDigestUnderEveryNameGenerationAndReply) {
  Daemon daemon;
  daemon.add_adapter("a", kBase);
  daemon.add_adapter("copy/of/a", kBase);
  Client client = daemon.connect();

  auto loaded = client.load("a");
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const std::string digest = loaded->digest;
  ASSERT_EQ(digest.size(), 32u);
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos) << digest;

  std::uint64_t first_generation = 0;
  {
    auto lease = client.acquire("a");
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    EXPECT_EQ(lease->digest(), digest);
    first_generation = lease->generation();
  }
  EXPECT_EQ(digest_of(client, "copy/of/a"), digest);
  auto pinned = client.pin("a");
  ASSERT_TRUE(pinned.ok()) << pinned.status().to_string();
  EXPECT_EQ(pinned->digest, digest);
  ASSERT_TRUE(client.unpin("a").ok());

  auto listing = client.list();
  ASSERT_TRUE(listing.ok()) << listing.status().to_string();
  ASSERT_EQ(listing->size(), 2u);
  for (const AdapterInfo& a : *listing) EXPECT_EQ(a.digest, digest) << a.name;

  // Unloaded and loaded again: a new generation, the same content.
  ASSERT_TRUE(client.unload("a").ok());
  auto again = client.acquire("a");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_NE(again->generation(), first_generation);
  EXPECT_EQ(again->digest(), digest);

  // A client without lease slots (every lease a message) sees the same.
  Client plain = daemon.connect_without_slots();
  EXPECT_EQ(digest_of(plain, "a"), digest);

  const CommandResult table =
      run_command({binary("genomectl"), "--socket", daemon.socket_path(), "list"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find(digest), std::string::npos) << table.out;
  const CommandResult json =
      run_command({binary("genomectl"), "--socket", daemon.socket_path(), "list", "--json"});
  EXPECT_NE(json.out.find("\"digest\": \"" + digest + "\""), std::string::npos) << json.out;
}

TEST(ContentDigest, AnyChangeOfTheContentChangesIt) {
  Daemon daemon;
  daemon.add_adapter("base", kBase);
  fixture::AdapterSpec bytes = kBase;
  bytes.seed = 4;  // other tensor bytes, same names, dtypes and shapes
  daemon.add_adapter("bytes", bytes);
  fixture::AdapterSpec dtype = kBase;
  dtype.dtype = layout::DType::BF16;  // same sizes
  daemon.add_adapter("dtype", dtype);
  fixture::AdapterSpec shape = kBase;
  shape.hidden = 32;
  daemon.add_adapter("shape", shape);
  fixture::AdapterSpec names = kBase;
  names.target_modules = {"q_proj", "k_proj"};
  daemon.add_adapter("names", names);
  fixture::AdapterSpec config = kBase;
  config.lora_alpha = 32;  // the tensors unchanged
  daemon.add_adapter("config", config);

  Client client = daemon.connect();
  const std::string base = digest_of(client, "base");
  ASSERT_EQ(base.size(), 32u);
  for (const char* changed : {"bytes", "dtype", "shape", "names", "config"})
    EXPECT_NE(digest_of(client, changed), base) << changed;
}

TEST(ContentDigest, OneTensorByteRewrittenOnDiskGivesTheReloadAnotherDigest) {
  Daemon daemon;
  const std::string dir = daemon.add_adapter("a", kBase);
  Client client = daemon.connect();
  const std::string before = digest_of(client, "a");
  ASSERT_TRUE(client.unload("a").ok());

  // The last byte of the file is a tensor's: a new file renamed over it.
  std::string weights = read_file(dir + "/adapter_model.safetensors");
  ASSERT_FALSE(weights.empty());
  weights.back() = static_cast<char>(weights.back() ^ 0x01);
  const std::string tmp = dir + "/adapter_model.safetensors.new";
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(weights.data(), 1, weights.size(), f), weights.size());
    ASSERT_EQ(std::fclose(f), 0);
  }
  ASSERT_EQ(std::rename(tmp.c_str(), (dir + "/adapter_model.safetensors").c_str()), 0);

  const std::string after = digest_of(client, "a");
  EXPECT_EQ(after.size(), 32u);
  EXPECT_NE(after, before);
}

}  // namespace
}  // namespace genomed::testing
