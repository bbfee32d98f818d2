// ScratchDir: a temporary directory a test (or a test tool) owns, made with
// mkdtemp under $TMPDIR (or /tmp) and removed with everything in it when the
// owner is destroyed -- also when an ASSERT returns early. Honouring TMPDIR
// is what lets Hygiene.TestsLeaveNothingBehind run representative tests
// under a parent of its own and check that it ends empty, without racing
// with the other tests running at the same time.
#pragma once

#include <string>
#include <string_view>

namespace genomed::testkit {

// $TMPDIR if set and non-empty, else /tmp.
std::string temp_base();

class ScratchDir {
 public:
  // mkdtemp("<temp_base()>/<prefix>-XXXXXX"); throws std::runtime_error
  // (with the path and errno's text) if it cannot.
  explicit ScratchDir(std::string_view prefix);
  ~ScratchDir();  // remove_all, errors ignored: a destructor cannot fail a test

  ScratchDir(ScratchDir&& other) noexcept;
  ScratchDir& operator=(ScratchDir&&) = delete;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;  // empty once moved from (nothing to remove)
};

}  // namespace genomed::testkit
