// Turns a client-supplied adapter name into the adapter's two files, opened
// beneath one of the configured roots. Each root is held open as a
// directory descriptor, and every name is resolved relative to it by the
// kernel (common/open_beneath.h: no `..`, no symlink anywhere on the way, not
// even one that stays inside), in the same call that opens it. So no rename
// or symlink swapped in at any moment can lead a name outside its root: the
// files opened here are the ones every job of the load reads (passed to the
// workers as descriptors), never reopened by path.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/open_beneath.h"
#include "common/status.h"
#include "layout/adapter_source.h"
#include "loader/file_identity.h"
#include "loader/file_lease.h"

namespace genomed::loader {

inline constexpr std::size_t kMaxNameLength = 512;

// An adapter's files, open for one load. Its identities are those of the
// open files when they were opened: the version the load must serve. Each
// file is read-leased (file_lease.h) from its open on, where the kernel
// allows it: the lease, not the identity, is what proves a load read one
// version. Whoever holds `files` last lets the leases go before closing them.
struct OpenedAdapter {
  // ROOT/NAME/<file>, for messages only (NAME escaped and cut at 200 bytes).
  layout::AdapterPaths paths;
  std::shared_ptr<const layout::AdapterFds> files;
  FileIdentity config;
  FileIdentity weights;  // also the key of quarantine strikes
  // A read lease was taken on the file at open (false: the kernel refused
  // it, and only the identity check guards the load).
  bool config_leased = false;
  bool weights_leased = false;

  // Errc::file_changed naming the file and what changed if either file's
  // lease was broken (someone opened it for writing or truncated it) or its
  // identity (fstat) differs from the one taken at open. Called after the
  // last read of the load: Ok means every read saw one version.
  Status unchanged() const;
};

class NameResolver {
 public:
  // Canonicalizes every root (realpath) and opens it as a directory (O_PATH);
  // a root that does not exist or is not a directory is an error naming it.
  // `resolution` is the open_beneath mode (tests force the walk).
  static Result<NameResolver> create(const std::vector<std::string>& roots,
                                     BeneathResolution resolution = BeneathResolution::automatic);

  // Checks the name's syntax (Errc::invalid_name), then looks in each root in
  // order for a directory of that name (Errc::not_found if none) and opens
  // its two files beneath it. A symbolic link anywhere on the way, or at
  // either file, is Errc::path_escapes_root (later roots are not tried); a
  // missing file, or one that is not a regular file (FIFO, directory,
  // device), is Errc::file_unreadable naming it. A FIFO is opened without
  // blocking (O_NONBLOCK). A file open for writing by anyone (a write may
  // be in progress) is Errc::file_changed: its read lease is refused.
  Result<OpenedAdapter> open(std::string_view name) const;

  // The canonical roots, in order.
  std::vector<std::string> roots() const;

 private:
  struct Root {
    std::string path;  // canonical
    Fd dir;            // O_PATH | O_DIRECTORY
  };
  std::vector<Root> roots_;  // constant after create()
  BeneathResolution resolution_ = BeneathResolution::automatic;
};

// Syntax check alone: non-empty, at most kMaxNameLength bytes, relative,
// components separated by '/', none empty, '.' or '..', no NUL or '\'.
Status validate_name(std::string_view name);

}  // namespace genomed::loader
