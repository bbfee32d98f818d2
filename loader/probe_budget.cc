#include "loader/probe_budget.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>

namespace genomed::loader {

std::uint64_t declared_header_bytes(int fd) {
  std::uint64_t declared = 0;
  struct stat st {};
  std::array<unsigned char, 8> prefix{};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 8 &&
      ::pread(fd, prefix.data(), prefix.size(), 0) == static_cast<ssize_t>(prefix.size())) {
    for (int i = 7; i >= 0; --i) declared = (declared << 8) | prefix[static_cast<std::size_t>(i)];
    // A length past the end of the file is refused by the worker at once.
    declared = std::min<std::uint64_t>(declared, static_cast<std::uint64_t>(st.st_size) - 8);
  }
  return declared;
}

std::uint64_t declared_header_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) return 0;
  const std::uint64_t declared = declared_header_bytes(fd);
  ::close(fd);
  return declared;
}

ProbeBudget::Turn::~Turn() {
  if (budget_ != nullptr) budget_->give_back();
}

Result<ProbeBudget::Turn> ProbeBudget::take(WaitClock::TimePoint deadline,
                                            const CancelToken* cancel) {
  MutexLock lock(mu_);
  ++waiting_;
  const bool got = wait_until(clock_, cv_, lock, deadline, [&]() REQUIRES(mu_) {
    return stopping_ || (cancel != nullptr && cancel->cancelled()) || taken_ < slots_;
  });
  --waiting_;
  if (stopping_) return Status(Errc::shutting_down, "genomed is stopping");
  if (cancel != nullptr && cancel->cancelled()) {
    return Status(Errc::cancelled, "the probe was cancelled while it waited for its turn");
  }
  if (!got) {
    return Status(Errc::timeout,
                  "the probe of this large-header adapter waited for its turn past its deadline: " +
                      std::to_string(taken_) + " other such probe(s) held every turn (" +
                      std::to_string(slots_) + ", one fewer than --workers) and " +
                      std::to_string(waiting_) + " more waited");
  }
  ++taken_;
  return Turn(this);
}

void ProbeBudget::give_back() {
  MutexLock lock(mu_);
  --taken_;
  cv_.notify_all();
}

void ProbeBudget::wake() {
  MutexLock lock(mu_);
  cv_.notify_all();
}

void ProbeBudget::stop() {
  MutexLock lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

std::size_t ProbeBudget::waiting() const {
  MutexLock lock(mu_);
  return waiting_;
}

}  // namespace genomed::loader
