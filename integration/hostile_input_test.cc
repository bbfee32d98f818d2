// Bad input of every kind against the real daemon: malformed adapters,
// hostile frames, dead clients, names that try to leave the roots. Each gets
// its typed error and the daemon keeps serving everyone else.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "integration/daemon_fixture.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "ipc/wire.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Connects a raw socket (no client library) to send hand-made frames.
int raw_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

void raw_hello(int fd) {
  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = ipc::kProtocolVersion;
  ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_request(hello)).ok());
  auto reply = ipc::read_frame(fd, ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/1);
  ASSERT_TRUE(reply.ok());
  ASSERT_EQ(reply->fds.size(), 1u);
  ::close(reply->fds[0]);
}

// Reads the daemon's error reply and then expects the connection to close.
Errc error_then_close(int fd) {
  auto reply = ipc::read_frame(fd, ipc::kMaxReplyFrame);
  if (!reply) return Errc::ok;
  auto decoded = ipc::decode_list_reply(reply->body);
  EXPECT_FALSE(decoded.ok());
  auto eof = ipc::read_frame(fd, ipc::kMaxReplyFrame);
  EXPECT_EQ(eof.code(), Errc::not_connected) << "connection stayed open";
  return decoded.code();
}

class HostileInput : public ::testing::Test {
 protected:
  // After every test: the daemon still serves a good adapter.
  void TearDown() override {
    daemon_.add_adapter("good", {});
    Client c = daemon_.connect();
    auto lease = c.acquire("good");
    EXPECT_TRUE(lease.ok()) << lease.status().to_string();
  }
  Daemon daemon_;
};

TEST_F(HostileInput, MalformedAdaptersGetTheirOwnTypedErrors) {
  struct Case {
    std::string name;
    std::function<void(const std::string& dir)> corrupt;
    Errc expected;
  };
  const std::vector<Case> cases = {
      {"trailing",
       [](const std::string& d) {
         std::ofstream(d + "/adapter_model.safetensors", std::ios::app | std::ios::binary)
             << "junk";
       },
       Errc::st_trailing_bytes},
      {"truncated",
       [](const std::string& d) {
         fs::resize_file(d + "/adapter_model.safetensors",
                         fs::file_size(d + "/adapter_model.safetensors") - 10);
       },
       Errc::st_offsets_out_of_bounds},
      {"tiny", [](const std::string& d) { write_text(d + "/adapter_model.safetensors", "abc"); },
       Errc::st_file_too_short},
      {"notjson",
       [](const std::string& d) {
         write_text(d + "/adapter_model.safetensors", std::string("\x04\0\0\0\0\0\0\0{{{{", 12));
       },
       Errc::st_header_invalid_json},
      {"hugeheader",
       [](const std::string& d) {
         write_text(d + "/adapter_model.safetensors",
                    std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
       },
       Errc::st_header_too_large},
      {"badconfig", [](const std::string& d) { write_text(d + "/adapter_config.json", "[1,2"); },
       Errc::config_invalid_json},
      {"norank",
       [](const std::string& d) {
         write_text(d + "/adapter_config.json",
                    R"({"peft_type":"LORA","lora_alpha":16,"target_modules":["q_proj"]})");
       },
       Errc::config_missing_field},
      {"prefix",
       [](const std::string& d) {
         write_text(
             d + "/adapter_config.json",
             R"({"peft_type":"PREFIX_TUNING","r":8,"lora_alpha":16,"target_modules":["q_proj"]})");
       },
       Errc::config_unsupported_peft_type},
      {"noweights", [](const std::string& d) { fs::remove(d + "/adapter_model.safetensors"); },
       Errc::file_unreadable},
  };
  Client client = daemon_.connect();
  for (const auto& c : cases) {
    const std::string dir = daemon_.add_adapter(c.name, {});
    c.corrupt(dir);
    auto r = client.acquire(c.name);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.code(), c.expected) << c.name << ": " << r.status().to_string();
    EXPECT_FALSE(r.status().message().empty());
  }
  EXPECT_EQ(daemon_.stat("loads_failed"), cases.size());
  EXPECT_EQ(daemon_.stat("bytes_resident"), 0u);
  EXPECT_EQ(daemon_.stat("workers_alive"), 2u);
}

TEST_F(HostileInput, ReferenceSamplesLoadWhenWrappedAsAdapters) {
  // The safetensors project's own sample files, with a PEFT config beside.
  const std::string samples = std::string(GENOMED_TESTDATA_DIR) + "/safetensors-samples";
  int loaded = 0;
  Client client = daemon_.connect();
  for (const auto& entry : fs::directory_iterator(samples)) {
    if (entry.path().extension() != ".safetensors") continue;
    const std::string name = "sample-" + entry.path().stem().string();
    const std::string dir = daemon_.root() + "/" + name;
    fs::create_directories(dir);
    fs::copy_file(entry.path(), dir + "/adapter_model.safetensors");
    write_text(dir + "/adapter_config.json",
               R"({"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj"]})");
    auto lease = client.acquire(name);
    ASSERT_TRUE(lease.ok()) << name << ": " << lease.status().to_string();
    EXPECT_FALSE(lease->tensors().empty());
    ++loaded;
  }
  EXPECT_GE(loaded, 10);
}

TEST_F(HostileInput, OversizedLengthPrefixClosesOnlyThatConnection) {
  Client bystander = daemon_.connect();
  const int fd = raw_connect(daemon_.socket_path());
  raw_hello(fd);
  const unsigned char huge[4] = {0x7f, 0xff, 0xff, 0xff};
  ASSERT_EQ(::send(fd, huge, 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(error_then_close(fd), Errc::frame_too_large);
  ::close(fd);
  EXPECT_TRUE(bystander.list().ok());
}

TEST_F(HostileInput, GarbageBodyClosesOnlyThatConnection) {
  Client bystander = daemon_.connect();
  const int fd = raw_connect(daemon_.socket_path());
  raw_hello(fd);
  ASSERT_TRUE(ipc::write_frame(fd, std::string("\xc1\xc1\xc1\xc1", 4)).ok());
  EXPECT_EQ(error_then_close(fd), Errc::malformed_frame);
  ::close(fd);
  EXPECT_TRUE(bystander.list().ok());
}

TEST_F(HostileInput, HugeDeclaredArrayIsRefusedWithoutAllocating) {
  const int fd = raw_connect(daemon_.socket_path());
  raw_hello(fd);
  // {"op": "acquire", "names": array32 of 2^32-1 elements} with no elements.
  std::string body =
      "\x82\xa2op\xa7"
      "acquire"
      "\xa5names\xdd\xff\xff\xff\xff";
  ASSERT_TRUE(ipc::write_frame(fd, body).ok());
  EXPECT_EQ(error_then_close(fd), Errc::malformed_frame);
  ::close(fd);
}

TEST_F(HostileInput, MalformedReleaseClosesTheConnectionWithoutAReply) {
  // RELEASE is one-way: an answer would be mistaken for the reply to the
  // client's next request, so the daemon closes instead.
  const int fd = raw_connect(daemon_.socket_path());
  raw_hello(fd);
  ipc::MapWriter bad;
  bad.put("op", "release").put("leases", "not-a-list");
  ASSERT_TRUE(ipc::write_frame(fd, bad.finish()).ok());
  auto eof = ipc::read_frame(fd, ipc::kMaxReplyFrame);
  EXPECT_EQ(eof.code(), Errc::not_connected);
  ::close(fd);
}

TEST_F(HostileInput, OversizedPrefixBeforeHelloIsAnsweredAndClosed) {
  const int fd = raw_connect(daemon_.socket_path());
  const unsigned char huge[4] = {0x7f, 0xff, 0xff, 0xff};
  ASSERT_EQ(::send(fd, huge, 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(error_then_close(fd), Errc::frame_too_large);
  ::close(fd);
}

TEST_F(HostileInput, WrongProtocolVersionIsRefused) {
  const int fd = raw_connect(daemon_.socket_path());
  ipc::Request hello;
  hello.op = ipc::Op::hello;
  hello.version = 99;
  ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_request(hello)).ok());
  EXPECT_EQ(error_then_close(fd), Errc::unsupported_version);
  ::close(fd);
}

TEST_F(HostileInput, RequestBeforeHelloIsRefused) {
  const int fd = raw_connect(daemon_.socket_path());
  ipc::Request list;
  list.op = ipc::Op::list;
  ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_request(list)).ok());
  EXPECT_EQ(error_then_close(fd), Errc::hello_required);
  ::close(fd);
}

TEST_F(HostileInput, UnknownOpAndWrongTypesAreAnsweredAndTheConnectionStays) {
  const int fd = raw_connect(daemon_.socket_path());
  raw_hello(fd);
  ipc::MapWriter unknown;
  unknown.put("op", "teleport");
  ASSERT_TRUE(ipc::write_frame(fd, unknown.finish()).ok());
  auto r1 = ipc::read_frame(fd, ipc::kMaxReplyFrame);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(ipc::decode_list_reply(r1->body).code(), Errc::unknown_op);
  ipc::MapWriter wrong;
  wrong.put("op", "load").put("name", std::uint64_t{42});
  ASSERT_TRUE(ipc::write_frame(fd, wrong.finish()).ok());
  auto r2 = ipc::read_frame(fd, ipc::kMaxReplyFrame);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(ipc::decode_list_reply(r2->body).code(), Errc::bad_request);
  ipc::Request list;
  list.op = ipc::Op::list;
  ASSERT_TRUE(ipc::write_frame(fd, ipc::encode_request(list)).ok());
  auto r3 = ipc::read_frame(fd, ipc::kMaxReplyFrame);
  ASSERT_TRUE(r3.ok());
  EXPECT_TRUE(ipc::decode_list_reply(r3->body).ok());
  ::close(fd);
}

TEST_F(HostileInput, ClientKilledWhileHoldingLeasesFreesThem) {
  daemon_.add_adapter("held", {});
  daemon_.add_adapter("held2", {.seed = 9});
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto c = Client::connect(daemon_.socket_path());
    if (!c) ::_exit(1);
    auto leases = c->acquire(std::vector<std::string>{"held", "held2"});
    if (!leases) ::_exit(2);
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char b = 0;
  ASSERT_EQ(::read(ready[0], &b, 1), 1);
  ::close(ready[0]);
  EXPECT_EQ(daemon_.stat("leases_active"), 2u);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(eventually([&] { return daemon_.stat("leases_active") == 0; }));
  Client c = daemon_.connect();
  auto unloaded = c.unload("held");
  ASSERT_TRUE(unloaded.ok());
  EXPECT_EQ(unloaded->outcome, "freed");
}

TEST_F(HostileInput, PathTraversalIsRefused) {
  const std::string outside = daemon_.dir() + "/outside";
  ASSERT_TRUE(fixture::write_adapter(outside + "/secret", {}).ok());
  // A symlinked adapter directory that leaves the root.
  fs::create_directory_symlink(outside + "/secret", daemon_.root() + "/escape");
  // An adapter whose weights file is a symlink out of the root.
  const std::string dir = daemon_.add_adapter("sneaky", {});
  fs::remove(dir + "/adapter_model.safetensors");
  fs::create_symlink(outside + "/secret/adapter_model.safetensors",
                     dir + "/adapter_model.safetensors");
  // Even a symlink that stays inside the root is refused: names are resolved
  // beneath the root without following any.
  daemon_.add_adapter("real", {});
  fs::create_directory_symlink(daemon_.root() + "/real", daemon_.root() + "/alias");

  Client client = daemon_.connect();
  const std::vector<std::pair<std::string, Errc>> cases = {
      {"../outside/secret", Errc::invalid_name},
      {outside + "/secret", Errc::invalid_name},
      {"a/../../outside/secret", Errc::invalid_name},
      {"./real", Errc::invalid_name},
      {"", Errc::invalid_name},
      {"escape", Errc::path_escapes_root},
      {"sneaky", Errc::path_escapes_root},
      {"alias", Errc::path_escapes_root},
  };
  for (const auto& [name, code] : cases) {
    auto r = client.acquire(name);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.code(), code) << name << ": " << r.status().to_string();
  }
  EXPECT_TRUE(client.acquire("real").ok());
  EXPECT_EQ(daemon_.stat("loads_completed"), 1u);  // only "real"; nothing outside was read
}

}  // namespace
}  // namespace genomed::testing
