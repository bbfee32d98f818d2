// The directory a --spawn run owns: the spawned daemon's socket and log, and
// the root it serves -- copies of the user's adapters (never the originals),
// generated ones, mutable copies whose weights the chaos replaces or
// rewrites, and malformed adapters it writes. Removed at the end unless kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "tools/stress/corpus.h"

namespace genomed::stress {

class ScratchRoot {
 public:
  // mkdtemp under $TMPDIR (or /tmp).
  static Result<ScratchRoot> create();

  const std::string& dir() const { return dir_; }
  std::string root() const { return dir_ + "/root"; }
  std::string socket() const { return dir_ + "/genomed.sock"; }
  std::string log() const { return dir_ + "/genomed.log"; }

  // Copies ROOT/NAME's two files into the scratch root.
  Status copy_adapter(const std::string& from_root, const std::string& name);
  // Writes `count` PEFT adapters of mixed sizes (about 0.1-2 MiB) named gen-I.
  Result<std::vector<std::string>> generate(int count, std::uint64_t seed);
  // Writes mut-I (version 0 in place) and `versions` weight files of the same
  // shapes (so of the same size) and other bytes, kept outside the root for
  // replace() and rewrite().
  Result<AdapterTruth> make_mutable(int index, int versions, std::uint64_t seed);
  // Replaces NAME's weights by version `v` the way deployments do: a copy
  // beside it, then rename() over the old file.
  Status replace(const AdapterTruth& adapter, int v);
  // Writes version `v` over NAME's weights file itself, as a training job
  // that checkpoints in place does: one pwrite of the whole file at the
  // same size, or (`truncate_first`) the file cut to nothing, then written
  // again in 64 KiB pwrites. Loads meanwhile see one version or
  // `file_changed`.
  Status rewrite(const AdapterTruth& adapter, int v, bool truncate_first);
  // Writes a malformed adapter bad-I (a variant chosen by I) and returns its name.
  Result<std::string> write_bad(int index);
  static int bad_variants();

  // Removes the whole directory.
  void remove();

 private:
  explicit ScratchRoot(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace genomed::stress
