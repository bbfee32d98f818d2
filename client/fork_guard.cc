#include "client/fork_guard.h"

#include <pthread.h>
#include <unistd.h>

namespace genomed::client_detail {

std::atomic<std::uint64_t> fork_generation{0};

namespace {  // this library's own: nothing of it is exported

void count_fork_in_child() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

std::uint64_t current_fork_generation() {
  static const int registered = ::pthread_atfork(nullptr, nullptr, count_fork_in_child);
  (void)registered;  // it fails only without memory: then every fork goes unnoticed
  return fork_generation.load(std::memory_order_relaxed);
}

ForkGuard::ForkGuard() : generation_(current_fork_generation()), owner_pid_(::getpid()) {}

std::string ForkGuard::forked_text(std::string_view op) const {
  return std::string(op) + ": this client was connected by process " +
         std::to_string(owner_pid_) + "; this process (" + std::to_string(::getpid()) +
         ") is a child of fork() and cannot use it (its requests and replies would mix "
         "with the parent's on the one socket): connect() again in this process";
}

}  // namespace genomed::client_detail
