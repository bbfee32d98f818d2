// Cold-from-disk loads for genome-bench (issue 24): dropping a file from the
// page cache and proving it is gone, and the device's best sequential read
// rate of the same file, the figure a cold genomed load is held against.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::bench {

// A directory whose files can be dropped from the page cache and read with
// O_DIRECT: not tmpfs/ramfs (their pages are the file), and O_DIRECT opens
// succeed. Empty `path` = none of the candidates; `skip_reason` says why.
struct ColdDir {
  std::string path;
  std::string skip_reason;  // set iff path is empty
};

// The first candidate that qualifies (each is probed with a small file).
ColdDir pick_cold_dir(const std::vector<std::string>& candidates);

// A new directory for a run's cold-from-disk adapters in `cold_dir`
// (--cold-dir), or when empty the first of /var/tmp and genome-bench's own
// directory that qualifies; removed if the run dies, unless `keep`
// (--keep-tmp). "" with the reason in `why` when no directory qualifies.
std::string make_cold_scratch(const std::string& cold_dir, bool keep, std::string* why);

// Removes what make_cold_scratch made (says where it is instead if `keep`).
void remove_cold_scratch(const std::string& dir, bool keep);

// Writes the file back (fsync), drops it from the page cache
// (posix_fadvise(POSIX_FADV_DONTNEED) over the whole file), then maps it and
// counts resident pages with mincore: an error naming the count if any page
// stays (a page someone maps or locks is not dropped), so no sample is ever
// measured warm by mistake.
Status drop_from_page_cache(const std::string& path);

// drop_from_page_cache for every regular file directly in `dir` (an adapter's
// directory: its config and its weights).
Status drop_dir_from_page_cache(const std::string& dir);

// How a sequential O_DIRECT read of a file is split: `streams` threads, each
// reading its own contiguous region in `chunk`-byte aligned reads (fio's
// --numjobs with --offset_increment, --bs=chunk, --direct=1).
struct DirectReadShape {
  int streams = 4;
  std::size_t chunk = 4u << 20;
};

// One cold sample of the whole file read as `shape` says: drops the file
// first (as drop_from_page_cache), returns GB/s (1e9 bytes/s).
Result<double> direct_read_gbps(const std::string& path, DirectReadShape shape);

// The device's best sequential read of `path`: every shape of kDeviceShapes,
// `reps` cold samples each; the best shape's median.
struct DeviceBest {
  double gbps = 0;
  DirectReadShape shape;
};
Result<DeviceBest> device_best_read(const std::string& path, int reps);

// One cold load of `path` by a Python loader (bench/cold_python_load.py:
// `loader` is load_file or fastsafetensors), run as `python script loader
// path` after the file is dropped from the page cache: GB/s of the file's
// tensor bytes over the load's own time (the interpreter's start-up and
// imports are not counted). An error carries the script's output when it
// fails (a loader not installed, say).
Result<double> python_cold_load_gbps(const std::string& python, const std::string& script,
                                     const std::string& loader, const std::string& path);

}  // namespace genomed::bench
