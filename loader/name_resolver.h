// Turns a client-supplied adapter name into the two file paths a worker may
// open, under the configured roots only. `..`, `.`, absolute names, and
// symlinks whose target leaves the root are refused: the daemon never reads a
// file a client points it at outside the roots.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "layout/adapter_source.h"

namespace genomed::loader {

inline constexpr std::size_t kMaxNameLength = 512;

class NameResolver {
 public:
  // Canonicalizes every root (realpath); a root that does not exist or is not
  // a directory is an error naming it.
  static Result<NameResolver> create(const std::vector<std::string>& roots);

  // Checks the name's syntax (Errc::invalid_name), then looks in each root in
  // order for a directory of that name (Errc::not_found if none). The
  // directory and both files, symlinks resolved, must stay inside that root
  // (Errc::path_escapes_root). Files that do not exist are passed on
  // unresolved: the worker reports them as file_unreadable.
  Result<format::AdapterPaths> resolve(std::string_view name) const;

  const std::vector<std::string>& roots() const { return roots_; }

 private:
  std::vector<std::string> roots_;  // canonical, constant after create()
};

// Syntax check alone: non-empty, at most kMaxNameLength bytes, relative,
// components separated by '/', none empty, '.' or '..', no NUL or '\'.
Status validate_name(std::string_view name);

}  // namespace genomed::loader
