// Adapters whose loads kill or hang workers. Each worker death the adapter
// can cause (Blame::adapter in pool.h: a crash signal, an exit mid-job, a
// missed deadline, a protocol violation; not a SIGKILL genomed did not send)
// is a strike against the adapter; at `strikes` strikes it is quarantined for
// `duration`: loads of it fail at once with `quarantined`, the cause and the
// time left, and other adapters are unaffected. An unload of the name, or a
// change of the weights file (FileIdentity: another file, or its size, mtime
// or ctime changed), lifts it; a successful load
// clears its strikes, and strikes older than `duration` are forgotten.
//
// Not thread-safe: the coordinator calls it under its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "loader/file_identity.h"

namespace genomed::loader {

struct QuarantineOptions {
  int strikes = 2;
  std::chrono::milliseconds duration{60'000};
};

class Quarantine {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Now = std::function<TimePoint()>;

  explicit Quarantine(QuarantineOptions options, Now now = std::chrono::steady_clock::now)
      : options_(options), now_(std::move(now)) {}

  // Counts one worker death caused by loading `name`; returns true if this
  // strike quarantined it.
  bool strike(const std::string& name, const std::string& cause, const FileIdentity& file);
  // Errc::quarantined if `name` is quarantined and its file is unchanged;
  // lifts an expired quarantine or one whose file changed.
  Status check(const std::string& name, const FileIdentity& file);
  void clear(const std::string& name) { records_.erase(name); }
  bool contains(const std::string& name) const { return records_.count(name) > 0; }
  // Names quarantined right now.
  std::size_t active() const;

 private:
  struct Record {
    int strikes = 0;
    std::string cause;  // of the last strike
    TimePoint last_strike{};
    FileIdentity file;
    bool quarantined = false;
    TimePoint until{};
  };
  const QuarantineOptions options_;
  const Now now_;
  std::unordered_map<std::string, Record> records_;
};

}  // namespace genomed::loader
