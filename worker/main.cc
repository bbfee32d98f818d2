// genome-worker: a loader process started by genomed's pool. It parses
// untrusted adapter files and writes validated tensors into the arena range
// the supervisor assigns. One job at a time; it exits when the supervisor
// closes its socket. A crash here costs one job, never the daemon.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "worker/jobs.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: genome-worker --ipc-fd N --arena-fd N [--base-model DIR]\n"
               "                     [--fault ACTION@STAGE[:MATCH]]\n"
               "Started by genomed; not meant to be run by hand.\n"
               "  --ipc-fd N        the socketpair end to read jobs from and write replies to\n"
               "  --arena-fd N      the arena's read-write shared-memory descriptor\n"
               "  --base-model DIR  check every adapter against this base model's weight shapes\n"
               "  --fault SPEC      tests only: crash|hang|exit|garbage @ probe|fill [:MATCH]\n");
}

bool parse_fd(const char* text, int* out) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0 || v > 1 << 20) return false;
  *out = static_cast<int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int ipc_fd = -1;
  int arena_fd = -1;
  std::optional<genomed::jobs::Fault> fault;
  std::optional<std::string> base_model_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if ((arg == "--ipc-fd" || arg == "--arena-fd") && i + 1 < argc) {
      if (!parse_fd(argv[++i], arg == "--ipc-fd" ? &ipc_fd : &arena_fd)) {
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
  if (ipc_fd < 0 || arena_fd < 0) {
    usage(stderr);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  auto arena = genomed::jobs::ArenaWindow::map(arena_fd);
  if (!arena) {
    std::fprintf(stderr, "genome-worker: %s\n", arena.status().to_string().c_str());
    return 3;
  }

  genomed::jobs::WorkerState state(*arena, fault, base_model_dir);
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
    auto job = genomed::jobs::decode_job(frame->body, std::move(files));
    const std::string reply =
        job ? genomed::jobs::run_job(*job, state) : genomed::ipc::encode_error(job.status());
    if (!genomed::ipc::write_frame(ipc_fd, reply).ok()) return 0;
  }
}
