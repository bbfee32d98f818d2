// genome-worker: a loader process started by genomed's pool. It parses
// untrusted adapter files and writes validated tensors into the arena range
// the supervisor assigns. One job at a time; it exits when the supervisor
// closes its socket. A crash here costs one job, never the daemon.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/memory_limit.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "jobs/job_protocol.h"
#include "worker/jobs.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: genome-worker --ipc-fd N [--base-model DIR] [--buffered-cold-reads]\n"
               "                     [--memory-limit BYTES] [--fault ACTION@STAGE[:MATCH]]\n"
               "Started by genomed; not meant to be run by hand.\n"
               "  --ipc-fd N        the socket genomed started it with: it sends genomed a\n"
               "                    socketpair end of its own there, then reads the arena's\n"
               "                    read-write descriptor and its jobs from that channel\n"
               "  --base-model DIR  check every adapter against this base model's weight shapes\n"
               "  --buffered-cold-reads  read weights mostly not in the page cache through it\n"
               "                    too, not with parallel O_DIRECT reads\n"
               "                    (genomed --cold-reads buffered)\n"
               "  --memory-limit BYTES  address space it may add to what it maps at start\n"
               "                    (RLIMIT_AS); a job that runs out is answered limit_exceeded\n"
               "  --fault SPEC      tests only: crash|hang|exit|garbage|stop @ probe|fill\n"
               "                    [:MATCH], or impostor@start\n");
}

bool parse_fd(const char* text, int* out) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0 || v > 1 << 20) return false;
  *out = static_cast<int>(v);
  return true;
}

bool parse_bytes(const char* text, std::uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || text[0] == '-') return false;
  *out = v;
  return true;
}

// Runs one job frame and returns its reply, never more than a reply frame
// holds. Running out of the memory limit is the job's typed result.
std::string answer(std::string_view frame, std::vector<genomed::Fd> files,
                   genomed::jobs::WorkerState& state, std::uint64_t memory_limit) {
  using namespace genomed;
  auto job = jobs::decode_job(frame, std::move(files));
  if (!job) return ipc::encode_error(job.status());
  const std::string what = std::string(job->kind == jobs::JobKind::probe  ? "probe"
                                       : job->kind == jobs::JobKind::fill ? "fill"
                                       : job->kind == jobs::JobKind::seal ? "seal"
                                                                          : "base_model") +
                           " job" + (job->paths.weights.empty() ? "" : " of " + job->paths.weights);
  try {
    return jobs::fit_reply_frame(jobs::run_job(*job, state), what);
  } catch (const std::bad_alloc&) {
    return ipc::encode_error(Status(
        Errc::limit_exceeded,
        "the " + what + " needed more memory than the worker memory limit allows (" +
            (memory_limit > 0 ? std::to_string(memory_limit) + " bytes, --worker-memory-limit)"
                              : std::string("no --worker-memory-limit: the host's memory)"))));
  }
}

// The channel the worker talks to the supervisor on, made after the prctl
// so that no other process can hold either end: the descriptor it was
// started with was in /proc/<worker>/fd, open to every process of the uid,
// from the exec until then, and whatever the supervisor wrote there could
// be read by whoever took a copy in that window (pidfd_getfd). Offered as
// the first frame on that socket (jobs::kChannelFrame); the supervisor
// checks it was this process that made the pair.
genomed::Result<genomed::Fd> open_channel(int ipc_fd) {
  using namespace genomed;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return Status(Errc::environment, std::string("socketpair: ") + std::strerror(errno));
  Fd mine(pair[0]);
  const Fd theirs(pair[1]);  // closed once sent: the supervisor holds the only copy
  GENOMED_RETURN_IF_ERROR(ipc::write_frame(ipc_fd, jobs::kChannelFrame, theirs.get()));
  return mine;
}

// The arena's read-write descriptor, from the supervisor's first frame on
// the channel (jobs::kArenaFrame).
genomed::Result<genomed::Fd> read_arena(int ipc_fd) {
  using namespace genomed;
  auto frame = ipc::read_frame(ipc_fd, jobs::kArenaFrame.size(), std::nullopt, /*max_fds=*/1);
  if (!frame) return frame.status();
  std::vector<Fd> fds;
  for (int fd : frame->fds) fds.emplace_back(fd);
  if (frame->body != jobs::kArenaFrame || fds.size() != 1) {
    return Status(Errc::worker_protocol,
                  "the first frame from the supervisor is not the arena's descriptor");
  }
  return std::move(fds[0]);
}

}  // namespace

int main(int argc, char** argv) {
  // First of all: no process of our uid may open /proc/<worker>/fd or
  // /proc/<worker>/mem, or ptrace us, to reach the arena we write (the
  // flag is reset by every exec, so genomed's own does not carry over).
  // The arena arrives only after this, on a channel made after it
  // (open_channel).
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) {
    std::fprintf(stderr, "genome-worker: prctl(PR_SET_DUMPABLE): %s\n", std::strerror(errno));
    return 3;
  }
  int ipc_fd = -1;
  std::optional<genomed::jobs::Fault> fault;
  std::optional<std::string> base_model_dir;
  std::uint64_t memory_limit = 0;  // 0: none
  genomed::format::ReadOptions read;  // direct for uncached ranges unless --buffered-cold-reads
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (arg == "--ipc-fd" && i + 1 < argc) {
      if (!parse_fd(argv[++i], &ipc_fd)) {
        std::fprintf(stderr, "genome-worker: invalid descriptor '%s' for %s\n", argv[i],
                     argv[i - 1]);
        return 2;
      }
      continue;
    }
    if (arg == "--base-model" && i + 1 < argc) {
      base_model_dir = argv[++i];
      continue;
    }
    if (arg == "--buffered-cold-reads") {
      read.direct_below_cached = 0;
      continue;
    }
    if (arg == "--memory-limit" && i + 1 < argc) {
      if (!parse_bytes(argv[++i], &memory_limit)) {
        std::fprintf(stderr, "genome-worker: invalid byte count '%s' for --memory-limit\n",
                     argv[i]);
        return 2;
      }
      continue;
    }
    if (arg == "--fault" && i + 1 < argc) {
      auto parsed = genomed::jobs::parse_fault(argv[++i]);
      if (!parsed) {
        std::fprintf(stderr, "genome-worker: %s\n", parsed.status().message().c_str());
        return 2;
      }
      fault = *parsed;
      continue;
    }
    std::fprintf(stderr, "genome-worker: unknown argument '%s'\n", argv[i]);
    usage(stderr);
    return 2;
  }
  if (ipc_fd < 0) {
    usage(stderr);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  if (fault && fault->fires(genomed::jobs::Fault::Stage::start, "")) {
    return genomed::jobs::offer_impostor_channel(ipc_fd, *fault);
  }
  auto opened = open_channel(ipc_fd);
  if (!opened) {
    if (opened.code() == genomed::Errc::not_connected) return 0;  // the supervisor gave up
    std::fprintf(stderr, "genome-worker: %s\n", opened.status().to_string().c_str());
    return 3;
  }
  // Nothing more goes over the socket it was started with: the channel
  // takes its place (and number), closing it.
  if (::dup3(opened->get(), ipc_fd, O_CLOEXEC) != ipc_fd) {
    std::fprintf(stderr, "genome-worker: dup3: %s\n", std::strerror(errno));
    return 3;
  }
  opened->reset();
  auto arena_fd = read_arena(ipc_fd);
  if (!arena_fd) {
    // EOF: the supervisor gave up on this worker before handing it the arena.
    if (arena_fd.code() == genomed::Errc::not_connected) return 0;
    std::fprintf(stderr, "genome-worker: %s\n", arena_fd.status().to_string().c_str());
    return 3;
  }
  auto arena = genomed::jobs::ArenaWindow::map(arena_fd->get());
  if (!arena) {
    std::fprintf(stderr, "genome-worker: %s\n", arena.status().to_string().c_str());
    return 3;
  }
  arena_fd->reset();  // the mapping is all it needs: hold no writable descriptor

  // Before any file is read: the arena mapping is part of what it maps now.
  if (memory_limit > 0) {
    if (auto limited = genomed::limit_memory(memory_limit); !limited.ok()) {
      std::fprintf(stderr, "genome-worker: %s\n", limited.to_string().c_str());
      return 3;
    }
  }

  genomed::jobs::WorkerState state(*arena, fault, base_model_dir, read);
  for (;;) {
    // A probe or fill comes with the adapter's two open files.
    auto frame = genomed::ipc::read_frame(ipc_fd, genomed::ipc::kMaxReplyFrame, std::nullopt,
                                          /*max_fds=*/2);
    if (!frame) {
      // The supervisor closed the socket (shutdown or replacement): exit quietly.
      if (frame.code() == genomed::Errc::not_connected) return 0;
      std::fprintf(stderr, "genome-worker: %s\n", frame.status().to_string().c_str());
      return 3;
    }
    std::vector<genomed::Fd> files;
    for (int fd : frame->fds) files.emplace_back(fd);
    const std::string reply = answer(frame->body, std::move(files), state, memory_limit);
    const bool sent = genomed::ipc::write_frame(ipc_fd, reply).ok();
    state.arena().close();  // a fill's region, left open until its reply is out (run_job)
    if (!sent) return 0;
  }
}
