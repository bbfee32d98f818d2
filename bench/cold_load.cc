#include "cold_load.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/fd.h"
#include "options.h"
#include "run_cleanup.h"

namespace genomed::bench {
namespace {

constexpr std::size_t kDirectAlign = 4096;  // O_DIRECT buffer, offset and length alignment

// The shapes device_best_read tries: parallel streams of large aligned
// reads, as fio's sequential-read jobs (a single stream is what dd gets).
constexpr DirectReadShape kDeviceShapes[] = {{1, 4u << 20}, {4, 1u << 20}, {4, 4u << 20},
                                             {8, 4u << 20}};

Status io_error(const std::string& what, const std::string& path, int err) {
  return Status(Errc::file_unreadable, what + " " + path + ": " + std::strerror(err));
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Resident pages of the open file `fd` of `size` bytes (mincore on a mapping).
Result<std::size_t> resident_pages(int fd, std::size_t size, const std::string& path) {
  if (size == 0) return std::size_t{0};
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return io_error("mmap", path, errno);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((size + page - 1) / page);
  const int rc = ::mincore(p, size, vec.data());
  const int err = errno;
  ::munmap(p, size);
  if (rc != 0) return io_error("mincore", path, err);
  return static_cast<std::size_t>(
      std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return (v & 1) != 0; }));
}

}  // namespace

ColdDir pick_cold_dir(const std::vector<std::string>& candidates) {
  std::string reasons;
  for (const std::string& dir : candidates) {
    struct statfs fs {};
    if (::statfs(dir.c_str(), &fs) != 0) {
      reasons += dir + ": " + std::strerror(errno) + "; ";
      continue;
    }
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
      reasons += dir + ": tmpfs/ramfs (its pages are the file: nothing to drop, no O_DIRECT); ";
      continue;
    }
    // O_DIRECT support is per filesystem (and some refuse it at open, others
    // at the first read): probe both with one aligned block.
    const std::string probe = dir + "/.genome-bench-odirect-probe";
    bool ok = false;
    std::string why;
    {
      Fd w(::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      std::vector<char> block(kDirectAlign, 'x');
      if (!w.valid() || ::write(w.get(), block.data(), block.size()) != ssize_t(block.size())) {
        why = std::string("cannot write a probe file: ") + std::strerror(errno);
      } else {
        Fd r(::open(probe.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
        std::unique_ptr<void, FreeDeleter> buf(std::aligned_alloc(kDirectAlign, kDirectAlign));
        if (!r.valid()) {
          why = std::string("O_DIRECT open: ") + std::strerror(errno);
        } else if (::pread(r.get(), buf.get(), kDirectAlign, 0) != ssize_t(kDirectAlign)) {
          why = std::string("O_DIRECT read: ") + std::strerror(errno);
        } else {
          ok = true;
        }
      }
    }
    ::unlink(probe.c_str());
    if (ok) return ColdDir{dir, ""};
    reasons += dir + ": " + why + "; ";
  }
  if (reasons.size() >= 2) reasons.resize(reasons.size() - 2);
  return ColdDir{"", reasons.empty() ? "no candidate directory" : reasons};
}

Status drop_from_page_cache(const std::string& path) {
  // O_RDWR is not needed: fsync and fadvise work on a read-only descriptor.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return io_error("open", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("fstat", path, errno);
  // Dirty pages are not dropped: write them back first.
  if (::fsync(fd.get()) != 0) return io_error("fsync", path, errno);
  if (const int rc = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED); rc != 0)
    return io_error("posix_fadvise(DONTNEED)", path, rc);
  const auto size = static_cast<std::size_t>(st.st_size);
  GENOMED_ASSIGN_OR_RETURN(const std::size_t resident, resident_pages(fd.get(), size, path));
  if (resident != 0) {
    return Status(Errc::file_unreadable,
                  path + ": " + std::to_string(resident) +
                      " page(s) still in the page cache after fsync + "
                      "posix_fadvise(DONTNEED) (mapped or locked by a process?); a sample "
                      "would not be cold");
  }
  return Status::Ok();
}

Status drop_dir_from_page_cache(const std::string& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) GENOMED_RETURN_IF_ERROR(drop_from_page_cache(it->path()));
  }
  if (ec) return Status(Errc::file_unreadable, "list " + dir + ": " + ec.message());
  return Status::Ok();
}

Result<double> direct_read_gbps(const std::string& path, DirectReadShape shape) {
  if (shape.streams < 1 || shape.chunk == 0 || shape.chunk % kDirectAlign != 0)
    return Status(Errc::bad_request, "direct read: streams >= 1, chunk a multiple of 4096");
  GENOMED_RETURN_IF_ERROR(drop_from_page_cache(path));
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (!fd.valid()) return io_error("open O_DIRECT", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("fstat", path, errno);
  const auto size = static_cast<std::size_t>(st.st_size);
  // Each stream's region starts on a chunk boundary; the last one ends at EOF
  // (O_DIRECT reads there return short, which ends the stream).
  const std::size_t chunks = (size + shape.chunk - 1) / shape.chunk;
  const std::size_t per_stream = (chunks + shape.streams - 1) / shape.streams;
  std::atomic<std::size_t> total{0};
  std::atomic<int> first_error{0};
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < shape.streams; ++s) {
    threads.emplace_back([&, s] {
      std::unique_ptr<void, FreeDeleter> buf(std::aligned_alloc(kDirectAlign, shape.chunk));
      if (!buf) {
        first_error = ENOMEM;
        return;
      }
      const std::size_t begin = static_cast<std::size_t>(s) * per_stream * shape.chunk;
      const std::size_t end = std::min(size, begin + per_stream * shape.chunk);
      for (std::size_t off = begin; off < end;) {
        const ssize_t n = ::pread(fd.get(), buf.get(), shape.chunk, static_cast<off_t>(off));
        if (n < 0) {
          if (errno == EINTR) continue;
          first_error = errno;
          return;
        }
        if (n == 0) break;
        total += static_cast<std::size_t>(n);
        off += static_cast<std::size_t>(n);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (first_error != 0) return io_error("O_DIRECT pread", path, first_error);
  if (total != size)
    return Status(Errc::file_unreadable, path + ": O_DIRECT read " + std::to_string(total.load()) +
                                             " of " + std::to_string(size) + " bytes");
  return static_cast<double>(size) / s / 1e9;
}

Result<DeviceBest> device_best_read(const std::string& path, int reps) {
  DeviceBest best;
  for (const DirectReadShape& shape : kDeviceShapes) {
    std::vector<double> gbps;
    for (int i = 0; i < std::max(1, reps); ++i) {
      GENOMED_ASSIGN_OR_RETURN(const double g, direct_read_gbps(path, shape));
      gbps.push_back(g);
    }
    std::sort(gbps.begin(), gbps.end());
    const std::size_t n = gbps.size();
    const double med = n % 2 ? gbps[n / 2] : (gbps[n / 2 - 1] + gbps[n / 2]) / 2;
    if (med > best.gbps) best = DeviceBest{med, shape};
  }
  return best;
}

Result<double> python_cold_load_gbps(const std::string& python, const std::string& script,
                                     const std::string& loader, const std::string& path) {
  GENOMED_RETURN_IF_ERROR(drop_from_page_cache(path));
  // Paths come from genome-bench itself (its own directories), quoted anyway.
  const auto quoted = [](const std::string& s) { return "'" + s + "'"; };
  const std::string command =
      quoted(python) + " " + quoted(script) + " " + loader + " " + quoted(path) + " 2>&1";
  std::FILE* out = ::popen(command.c_str(), "r");
  if (out == nullptr) return io_error("popen", python, errno);
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, out)) > 0;) text.append(buf, n);
  const int status = ::pclose(out);
  double seconds = 0;
  unsigned long long bytes = 0;
  const auto at = text.rfind("{\"seconds\": ");
  if (status != 0 || at == std::string::npos ||
      std::sscanf(text.c_str() + at, "{\"seconds\": %lf, \"bytes\": %llu}", &seconds, &bytes) != 2 ||
      seconds <= 0) {
    return Status(Errc::internal, loader + " of " + path + " failed: " + text.substr(0, 2000));
  }
  return static_cast<double>(bytes) / seconds / 1e9;
}

std::string make_cold_scratch(const std::string& cold_dir, bool keep, std::string* why) {
  const std::vector<std::string> candidates =
      cold_dir.empty() ? std::vector<std::string>{"/var/tmp", self_dir()}
                       : std::vector<std::string>{cold_dir};
  const ColdDir where = pick_cold_dir(candidates);
  if (where.path.empty()) {
    *why = where.skip_reason;
    return "";
  }
  std::string tmpl = where.path + "/genome-bench-cold-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp " + tmpl + ": " + std::strerror(errno));
  if (!keep) remove_on_failure(Scratch::cold, tmpl);
  return tmpl;
}

void remove_cold_scratch(const std::string& dir, bool keep) {
  if (keep) {
    std::printf("kept %s\n", dir.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  remove_on_failure(Scratch::cold, "");
}

}  // namespace genomed::bench
