// Test-only fault injection in genome-worker, so that fault tests are
// deterministic instead of racing signals: `--fault ACTION@STAGE[:MATCH]`
// makes the worker crash, hang, exit or send garbage at a chosen point of any
// job whose weights path contains MATCH (every job if MATCH is empty).
// With `,once=PATH` the fault fires in the first worker that manages to
// create PATH (O_EXCL), which then holds that worker's pid: tests learn
// which process to signal, and retries on fresh workers succeed.
//
//   ACTION: crash (SIGSEGV-like abort), hang (stops making progress until
//           killed), exit (exits with code 7), garbage (replies with bytes
//           that are not msgpack), stop (SIGSTOPs itself, then, once
//           continued, does the job as if nothing happened: a test changes
//           the world at that point, e.g. writes the adapter's files)
//   STAGE:  probe (before validating), fill (after writing half of the
//           range; stop: before the fill reads the files)
//
// `eio@read`, `short@read` and `nodirect@read` change the fill's reads of
// the weights instead (worker/format/read_into.h, ReadFaults): every data
// read fails with EIO (a failing disk), returns about half of what it asked
// (short reads, which the reader must complete), or the O_DIRECT reopen is
// refused with EINVAL (a file system without direct I/O: the reader must
// fall back to buffered reads). They also force direct reads where the file
// is cached, so the direct path is the one tested.
//
// `impostor@start[,once=PATH]` acts at start-up instead: the worker offers
// genomed a channel that a child of its own created (as a process of the
// uid holding a copy of the worker's socket would) instead of its own
// (jobs::kChannelFrame). The child then waits on the other end and appends
// to PATH what came: "arena" (genomed handed it the arena: the hole this
// tests) or "refused" (genomed closed it unanswered).
//
// genomed passes `--worker-fault SPEC` through to every worker it starts.
//
// Compiled in only with the CMake option GENOMED_FAULT_INJECTION (fault.cc);
// otherwise fault_disabled.cc implements this interface and parse_fault
// refuses every spec, saying how to build with it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace genomed::jobs {

struct Fault {
  enum class Action { crash, hang, exit, garbage, stop, impostor, eio, short_read, no_direct } action =
      Action::crash;
  enum class Stage { probe, fill, start, read } stage = Stage::probe;
  std::string match;      // substring of the weights path; empty: every job
  std::string once_path;  // fire only if this file can be created

  // True if the fault fires now (claims once_path as a side effect).
  bool fires(Stage at, std::string_view weights_path) const;
};

// True if this build has fault injection (GENOMED_FAULT_INJECTION=ON).
bool fault_injection_built();

// ACTION@STAGE[:MATCH][,once=PATH]. Errc::bad_request for a malformed spec,
// and for every spec in a build without fault injection.
Result<Fault> parse_fault(std::string_view spec);

// Performs the action (does not return for crash, hang and exit). For
// garbage, returns the reply to send instead of the real one; for stop, an
// empty string once the worker is continued (the job goes on).
std::string trigger_fault(const Fault& fault);

// impostor@start: offers genomed, on the worker's socket `ipc_fd`, a channel
// a child of this process created, reports what the child got (see above)
// and returns the worker's exit code once the child is done.
int offer_impostor_channel(int ipc_fd, const Fault& fault);

}  // namespace genomed::jobs
