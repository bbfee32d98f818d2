// Hostile files (issue 9) against the real daemon: while loads run, an
// attacker swaps an adapter's directory (or a directory above it) for a
// symlink out of the root, or rewrites its weights file (in place, by
// truncating and writing it again, or by renaming a new file over it). No
// successful load may serve bytes from outside the root, or bytes of any
// but one whole version of the file (not even an instant of the file half-
// rewritten: genomed's read leases refuse a file open for writing); a load
// that saw its file change fails with `file_changed`, and the next one loads
// the new version.
//
// Each attacker is a thread with a bounded number of iterations that stops
// when the loads are done; nothing waits on time. The swaps run flat out. A
// rewrite starts as soon as a load (the first to begin after the previous
// rewrite ended) reads the weights file, so it lands after the probe read
// them and before or while the fill does; the file stands still from its
// end until the next load.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "common/fd.h"
#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"
#include "integration/process_helpers.h"
#include "tools/testkit/eventually.h"
#include "tools/testkit/scratch_dir.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;

// Attacker iterations at most (they stop as soon as the loads are done).
constexpr int kMaxAttacks = 10'000'000;

// The data section of a version of the weights file, and its tensors.
struct Version {
  std::string file;  // the whole file
  std::string data;  // its data section
  std::map<std::string, FileTensor> tensors;
};

Version version_of(const std::string& weights_path) {
  Version v;
  v.file = read_file(weights_path);
  v.tensors = read_file_tensors(weights_path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<unsigned char>(v.file[static_cast<std::size_t>(i)]);
  v.data = v.file.substr(8 + n);
  return v;
}

// What a lease serves, laid out as the weights file's data section (the
// tensors at their file offsets), so it can be compared with versions.
std::string served_data(const Lease& lease, const Version& layout) {
  std::string out(layout.data.size(), '\0');
  for (const TensorView& t : lease.tensors()) {
    const auto it = layout.tensors.find(std::string(t.name));
    if (it == layout.tensors.end() || t.data.size() != it->second.bytes.size()) return "";
    std::memcpy(out.data() + it->second.data_begin, t.data.data(), t.data.size());
  }
  return out;
}

// True if `got` is what a file rewritten front to back from `from` to `to`
// held at one instant: to[0, x) + from[x, end) for some x (0 or the end: a
// whole version). The longest prefix of `to` is the only x to try: where
// `got` matches both, the two versions agree.
bool one_instant_of_rewrite(const std::string& got, const std::string& from,
                            const std::string& to) {
  if (got.size() != from.size() || got.size() != to.size()) return false;
  std::size_t x = 0;
  while (x < got.size() && got[x] == to[x]) ++x;
  return got.compare(x, std::string::npos, from, x, std::string::npos) == 0;
}

// Swaps two directory entries atomically (either may be a symlink).
void exchange(const std::string& a, const std::string& b) {
  ASSERT_EQ(::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE), 0)
      << a << " <-> " << b << ": " << std::strerror(errno);
}

// What the loads of one test saw.
struct Tally {
  int loads = 0;
  int served = 0;
  int served_outside = 0;  // swap tests: the outside adapter's bytes
  int served_neither = 0;  // bytes of no version (torn)
  int served_mixture = 0;  // a front-to-back instant of a rewrite: mixed bytes, a failure
  std::map<std::string, int> failures;  // by code name
  std::string summary() const {
    std::string s = std::to_string(loads) + " loads, " + std::to_string(served) + " served (" +
                    std::to_string(served_outside) + " from outside, " +
                    std::to_string(served_neither) + " torn, " + std::to_string(served_mixture) +
                    " mid-rewrite instants); failures:";
    for (const auto& [code, n] : failures) s += " " + code + " x" + std::to_string(n);
    return s;
  }
};

// Tells an attacker when a load reads the weights file, so that a rewrite
// lands in the load's most fragile stretch: after the probe has read the
// file, while the fill is yet to read it (or reading it). Loads are counted
// as they begin; reads of the file are inotify IN_ACCESS events on its
// directory (a watch on the directory still sees the file renamed over).
class WeightsReads {
 public:
  WeightsReads(const std::string& dir, std::string file)
      : file_(std::move(file)),
        inotify_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
        done_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    EXPECT_GE(::inotify_add_watch(inotify_.get(), dir.c_str(), IN_ACCESS), 0);
    EXPECT_TRUE(done_fd_.valid());
  }

  // The loader: one more load begins.
  void load_begins() {
    std::lock_guard lock(mu_);
    ++begun_;
    changed_.notify_all();
  }
  // The loader: no more loads; the attacker stops.
  void done() {
    std::lock_guard lock(mu_);
    done_ = true;
    changed_.notify_all();
    const std::uint64_t one = 1;
    EXPECT_EQ(::write(done_fd_.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  }
  // The attacker: waits until a load begun after the `seen` ones reads the
  // file (true; `seen` becomes the loads begun so far), or done() (false).
  bool await_read_by_next_load(int* seen) {
    if (!await_next_load(seen)) return false;
    drain();  // reads of earlier loads
    for (;;) {
      pollfd p[2] = {{inotify_.get(), POLLIN, 0}, {done_fd_.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 && errno != EINTR) return false;
      if (p[1].revents != 0) return false;
      if (drain()) return true;
    }
  }
  // The attacker: waits until a load begun after the `seen` ones begins
  // (true; `seen` becomes the loads begun so far), or done() (false).
  bool await_next_load(int* seen) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return done_ || begun_ > *seen; });
    if (done_) return false;
    *seen = begun_;
    return true;
  }
  int begun() {
    std::lock_guard lock(mu_);
    return begun_;
  }

 private:
  // Reads every pending event; true if one was a read of the file.
  bool drain() {
    bool read = false;
    alignas(inotify_event) char buf[4096];
    for (;;) {
      const ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
      if (n <= 0) return read;
      for (ssize_t at = 0; at < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
        if ((e->mask & IN_ACCESS) != 0 && e->len > 0 && file_ == e->name) read = true;
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
  }

  const std::string file_;
  Fd inotify_;
  Fd done_fd_;
  std::mutex mu_;
  std::condition_variable changed_;
  int begun_ = 0;
  bool done_ = false;
};

// Acquires `name` `loads` times, each a fresh load (released and unloaded
// afterwards), judging each lease's bytes with `judge`.
template <class Judge>
Tally load_repeatedly(Client& client, const std::string& name, int loads, Judge judge,
                      WeightsReads* reads = nullptr) {
  Tally tally;
  for (int i = 0; i < loads; ++i) {
    ++tally.loads;
    if (reads != nullptr) reads->load_begins();
    auto lease = client.acquire(name);
    if (lease.ok()) {
      ++tally.served;
      judge(*lease, tally);
      lease->release();
    } else {
      ++tally.failures[std::string(errc_name(lease.code()))];
    }
    auto unloaded = client.unload(name);
    EXPECT_TRUE(unloaded.ok() || unloaded.code() == Errc::not_loaded)
        << unloaded.status().to_string();
  }
  return tally;
}

// ---- names swapped for symlinks out of the root ------------------------------

class SwappedNames : public ::testing::Test {
 protected:
  SwappedNames() : daemon_({.budget_bytes = 64ull << 20, .workers = 2}) {}

  // Loads `name` while an attacker exchanges `real` (a directory on the
  // name's path) with `link` (a symlink to the same place outside the root,
  // holding an adapter of the same shape but other bytes).
  void attack(const std::string& name, const std::string& real, const std::string& link,
              const Version& inside, const Version& outside) {
    std::atomic<bool> done{false};
    std::atomic<int> swaps{0};
    std::thread attacker([&] {
      for (int i = 0; i < kMaxAttacks && !done.load(); ++i) {
        exchange(real, link);
        ++swaps;
      }
    });
    Client client = daemon_.connect();
    const Tally tally = load_repeatedly(client, name, 400, [&](const Lease& lease, Tally& t) {
      const std::string got = served_data(lease, inside);
      if (got == outside.data)
        ++t.served_outside;
      else if (got != inside.data)
        ++t.served_neither;
    });
    done = true;
    attacker.join();
    if (fs::is_symlink(real)) exchange(real, link);  // the directory back in place
    std::printf("[ swap ] %s: %s; %d swaps\n", name.c_str(), tally.summary().c_str(), swaps.load());
    EXPECT_EQ(tally.served_outside, 0) << tally.summary();
    EXPECT_EQ(tally.served_neither, 0) << tally.summary();
    EXPECT_GT(tally.served, 0) << tally.summary();  // the directory was in place for some
    for (const auto& [code, n] : tally.failures) {
      EXPECT_EQ(code, "path_escapes_root") << tally.summary();
    }
    EXPECT_GT(swaps.load(), 0);
    // Undisturbed, the name loads the inside adapter.
    auto lease = client.acquire(name);
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    EXPECT_TRUE(served_data(*lease, inside) == inside.data);
  }

  Daemon daemon_;
  const fixture::AdapterSpec spec_{.rank = 8, .layers = 2, .hidden = 256, .seed = 1};
  const fixture::AdapterSpec other_{.rank = 8, .layers = 2, .hidden = 256, .seed = 2};
};

TEST_F(SwappedNames, AnAdapterDirectorySwappedForASymlinkOutOfTheRootNeverServesOutsideBytes) {
  const std::string dir = daemon_.add_adapter("victim", spec_);
  const std::string outside = daemon_.dir() + "/outside/victim";
  ASSERT_TRUE(fixture::write_adapter(outside, other_).ok());
  fs::create_directory_symlink(outside, daemon_.root() + "/victim-link");
  attack("victim", dir, daemon_.root() + "/victim-link",
         version_of(dir + "/adapter_model.safetensors"),
         version_of(outside + "/adapter_model.safetensors"));
}

TEST_F(SwappedNames, ADirectoryAboveTheAdapterSwappedForASymlinkNeverServesOutsideBytes) {
  const std::string dir = daemon_.add_adapter("grp/victim", spec_);
  const std::string outside = daemon_.dir() + "/outside/grp";
  ASSERT_TRUE(fixture::write_adapter(outside + "/victim", other_).ok());
  fs::create_directory_symlink(outside, daemon_.root() + "/grp-link");
  attack("grp/victim", daemon_.root() + "/grp", daemon_.root() + "/grp-link",
         version_of(dir + "/adapter_model.safetensors"),
         version_of(outside + "/victim/adapter_model.safetensors"));
}

// ---- weights rewritten while they load ----------------------------------------

enum class Rewrite {
  in_place,
  truncate_and_restore,
  atomic_rename,
  alternating,  // in place and truncate-and-restore by turns (one writer)
};

class RewrittenWeights : public ::testing::Test {
 protected:
  // Two workers, so a fill of 8 MiB or more is split into parts: each part
  // read the file by itself before, and each must read the same version now.
  // `stop_a_fill_part`: the first fill part's worker SIGSTOPs itself before
  // it reads the file, its pid in marker_ (a once-fault).
  explicit RewrittenWeights(bool stop_a_fill_part = false)
      : daemon_({.budget_bytes = 128ull << 20,
                 .workers = 2,
                 .extra_args = stop_a_fill_part
                                   ? std::vector<std::string>{"--worker-fault",
                                                              "stop@fill:/w/,once=" + marker_}
                                   : std::vector<std::string>{}}) {}

  void SetUp() override {
    dir_ = daemon_.add_adapter("w", spec(1));
    weights_ = dir_ + "/adapter_model.safetensors";
    // The same header, other bytes: written aside, then read.
    for (std::uint64_t seed : {1, 2}) {
      const std::string aside = daemon_.dir() + "/v" + std::to_string(seed);
      ASSERT_TRUE(fixture::write_adapter(aside, spec(seed)).ok());
      versions_.push_back(version_of(aside + "/adapter_model.safetensors"));
      ASSERT_EQ(read_file(aside + "/adapter_config.json"),
                read_file(dir_ + "/adapter_config.json"));
    }
    ASSERT_EQ(versions_[0].file.size(), versions_[1].file.size());
    ASSERT_NE(versions_[0].data, versions_[1].data);
    ASSERT_GE(versions_[0].file.size(), 8u << 20);  // a split fill
  }

  static fixture::AdapterSpec spec(std::uint64_t seed) {
    return {.rank = 64, .layers = 5, .hidden = 4096, .dtype = layout::DType::F16, .seed = seed};
  }

  // Writes `v` over the weights file as `how` says, front to back: in place
  // with one write call, as a checkpoint writer does (the kernel updates the
  // file's times first, then copies the 10 MiB: a load that opens the file
  // meanwhile sees its final times); truncated and restored in 64 KiB
  // writes. (The open for writing waits while genomed lets go of the lease
  // of a load that reads the file.)
  void rewrite(Rewrite how, const Version& v) {
    const std::size_t kChunk = how == Rewrite::in_place ? v.file.size() : 64 << 10;
    const std::size_t header_end = v.file.size() - v.data.size();
    if (how == Rewrite::atomic_rename) {
      const std::string next = dir_ + "/.next";
      const int fd = ::open(next.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::write(fd, v.file.data(), v.file.size()), static_cast<ssize_t>(v.file.size()));
      ::close(fd);
      ASSERT_EQ(::rename(next.c_str(), weights_.c_str()), 0);
      return;
    }
    const int fd = ::open(weights_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::size_t from = 0;
    if (how == Rewrite::truncate_and_restore) {
      // The tensors are cut off, then the file is its full size again (their
      // bytes zero) before they are written back.
      ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(header_end)), 0);
      ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(v.file.size())), 0);
      from = header_end;
    }
    for (std::size_t at = from; at < v.file.size(); at += kChunk) {
      const std::size_t n = std::min(kChunk, v.file.size() - at);
      ASSERT_EQ(::pwrite(fd, v.file.data() + at, n, static_cast<off_t>(at)),
                static_cast<ssize_t>(n));
    }
    ::close(fd);
  }

  // When a rewrite starts: once a load has read the file (after its probe:
  // the fill is to come), or as soon as a load begins (its open races the
  // write: a write under way when the load opens the file has updated the
  // file's times already).
  enum class Start { after_first_read, with_the_load };

  // Loads while a writer rewrites the weights with v1, v2, v1, ... as `how`
  // says; every load served must be one whole version of the file, every
  // failure `file_changed`.
  void attack(Rewrite how, Start start = Start::after_first_read, int loads = 80) {
    // What the data section held before a rewrite overwrote it front to
    // back (an atomic rename has no in-between instant): to tell a torn
    // load from one that read a mid-rewrite instant, both failures.
    const std::string zeros(versions_[0].data.size(), '\0');
    const auto overwritten = [&](const Version& before) -> std::vector<const std::string*> {
      if (how == Rewrite::in_place) return {&before.data};
      if (how == Rewrite::truncate_and_restore) return {&zeros};
      if (how == Rewrite::alternating) return {&before.data, &zeros};
      return {};
    };
    WeightsReads reads(dir_, "adapter_model.safetensors");
    std::atomic<int> rewrites{0};
    std::thread writer([&] {
      int seen = 0;
      const auto next = [&] {
        return start == Start::after_first_read ? reads.await_read_by_next_load(&seen)
                                                : reads.await_next_load(&seen);
      };
      for (int i = 1; i < kMaxAttacks && next(); ++i) {
        const Rewrite kind = how != Rewrite::alternating ? how
                             : (i / 2) % 2 == 0    ? Rewrite::in_place
                                                   : Rewrite::truncate_and_restore;
        rewrite(kind, versions_[static_cast<std::size_t>(i % 2)]);
        rewrites = i;
        seen = reads.begun();  // not those that began during the rewrite
      }
    });
    Client client = daemon_.connect();
    const Tally tally = load_repeatedly(
        client, "w", loads,
        [&](const Lease& lease, Tally& t) {
          const std::string got = served_data(lease, versions_[0]);
          if (got == versions_[0].data || got == versions_[1].data) return;
          // Read while the writer was half-way through a rewrite.
          for (std::size_t to = 0; to < 2; ++to) {
            for (const std::string* from : overwritten(versions_[1 - to])) {
              if (one_instant_of_rewrite(got, *from, versions_[to].data)) {
                ++t.served_mixture;
                return;
              }
            }
          }
          ++t.served_neither;
        },
        &reads);
    reads.done();
    writer.join();
    std::printf("[ rewrite ] %s; %d rewrites\n", tally.summary().c_str(), rewrites.load());
    EXPECT_EQ(tally.served_neither, 0) << tally.summary();
    EXPECT_EQ(tally.served_mixture, 0) << tally.summary();
    EXPECT_GT(rewrites.load(), 0);
    for (const auto& [code, n] : tally.failures) EXPECT_EQ(code, "file_changed") << tally.summary();
    // The file is stable now (the writer ends on a whole version): the next
    // load reads it, neither refused as quarantined nor served from before.
    const Version& last = versions_[static_cast<std::size_t>(rewrites.load() % 2)];
    auto lease = client.acquire("w");
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    EXPECT_TRUE(served_data(*lease, last) == last.data);
    EXPECT_EQ(daemon_.stat("quarantined"), 0u);
  }

  // Declared before the daemon: made before it, removed after it.
  const testkit::ScratchDir marker_dir_{"genomed-marker"};
  const std::string marker_ = marker_dir_ / "fired";
  Daemon daemon_;
  std::string dir_, weights_;
  std::vector<Version> versions_;
};

TEST_F(RewrittenWeights, InPlaceRewritesAreServedAsOneWholeVersionOrRefused) {
  attack(Rewrite::in_place);
}

TEST_F(RewrittenWeights, InPlaceRewritesRacingTheOpenAreServedAsOneWholeVersionOrRefused) {
  // Before read leases, loads that opened the file while a write call was
  // copying its bytes served an instant of the file half-rewritten.
  // (Measured so: 1 to 5 of 80 loads; 200 make a miss unlikely.)
  attack(Rewrite::in_place, Start::with_the_load, 200);
}

TEST_F(RewrittenWeights, TruncateAndRestoreIsServedAsOneWholeVersionOrRefused) {
  // Not even a load that opened the file while its tensors were cut off is
  // told they lie past the end: the writer had the file open, so it was
  // refused as `file_changed`.
  attack(Rewrite::truncate_and_restore);
}

TEST_F(RewrittenWeights, AlternatingInPlaceAndTruncatingRewritesAreServedAsOneWholeVersion) {
  attack(Rewrite::alternating);
}

TEST_F(RewrittenWeights, AtomicRenamesAreServedAsOneWholeVersionOrRefused) {
  attack(Rewrite::atomic_rename);
}

TEST_F(RewrittenWeights, AWeightsFileOpenForWritingIsNotLoadedUntilItsWriterClosesIt) {
  // A writer that keeps the file open (a checkpointing job) may be between
  // two writes, or inside one whose timestamps are already final: no load
  // reads the file meanwhile, whatever it holds.
  Fd writer(::open(weights_.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(writer.valid());
  Client client = daemon_.connect();
  auto refused = client.acquire("w");
  ASSERT_EQ(refused.code(), Errc::file_changed) << refused.status().to_string();
  EXPECT_NE(refused.status().message().find("open for writing"), std::string::npos)
      << refused.status().message();
  ASSERT_EQ(::pwrite(writer.get(), versions_[1].file.data(), versions_[1].file.size(), 0),
            static_cast<ssize_t>(versions_[1].file.size()));
  writer.reset();
  auto lease = client.acquire("w");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  EXPECT_TRUE(served_data(*lease, versions_[1]) == versions_[1].data);
  EXPECT_EQ(daemon_.stat("quarantined"), 0u);
}

// One part of a split fill stops before it reads the file (the other may
// have copied its tensors already) while the test rewrites the file in
// place: whatever mix the parts copied, the load fails, and the writer is
// not held back until the load ends.
class RewrittenMidFill : public RewrittenWeights {
 protected:
  RewrittenMidFill() : RewrittenWeights(/*stop_a_fill_part=*/true) {}
};

TEST_F(RewrittenMidFill, ALoadWhoseFileIsRewrittenBetweenItsPartsFailsAndTheNextServesTheNewVersion) {
  Client client = daemon_.connect();
  Result<Lease> first = Status(Errc::internal, "not run");
  std::thread load([&] { first = client.acquire("w"); });
  pid_t stopped = -1;
  ASSERT_TRUE(testkit::eventually([&] {
    stopped = pid_in(marker_);
    return stopped > 0 && testkit::process_state(stopped) == 'T';
  }));
  // Opening the file for writing breaks the load's lease; genomed lets go
  // at once (else this open would wait out lease-break-time, 45 s).
  rewrite(Rewrite::in_place, versions_[1]);
  ASSERT_EQ(::kill(stopped, SIGCONT), 0);
  load.join();
  ASSERT_EQ(first.code(), Errc::file_changed) << first.status().to_string();
  EXPECT_NE(first.status().message().find("opened for writing or truncated"), std::string::npos)
      << first.status().message();
  Client other = daemon_.connect();
  auto lease = other.acquire("w");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  EXPECT_TRUE(served_data(*lease, versions_[1]) == versions_[1].data);
}

}  // namespace
}  // namespace genomed::testing
