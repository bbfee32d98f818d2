#include "worker/fault.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/safe_text.h"
#include "ipc/framing.h"
#include "jobs/job_protocol.h"

namespace genomed::jobs {

bool fault_injection_built() { return true; }

Result<Fault> parse_fault(std::string_view spec_in) {
  std::string_view spec = spec_in;
  const auto bad = [&](const std::string& why) {
    return Status(Errc::bad_request,
                  "invalid fault " + quote(std::string(spec_in)) + ": " + why +
                      " (expected ACTION@STAGE[:MATCH], e.g. crash@fill:bad-adapter)");
  };
  std::string_view once;
  if (const auto comma = spec.find(",once="); comma != std::string_view::npos) {
    once = spec.substr(comma + 6);
    spec = spec.substr(0, comma);
    if (once.empty()) return bad("empty once= path");
  }
  const auto at = spec.find('@');
  if (at == std::string_view::npos) return bad("missing '@'");
  Fault f;
  const std::string_view action = spec.substr(0, at);
  std::string_view rest = spec.substr(at + 1);
  std::string_view stage = rest;
  if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
    stage = rest.substr(0, colon);
    f.match = std::string(rest.substr(colon + 1));
  }
  if (action == "crash")
    f.action = Fault::Action::crash;
  else if (action == "hang")
    f.action = Fault::Action::hang;
  else if (action == "exit")
    f.action = Fault::Action::exit;
  else if (action == "garbage")
    f.action = Fault::Action::garbage;
  else if (action == "stop")
    f.action = Fault::Action::stop;
  else if (action == "impostor")
    f.action = Fault::Action::impostor;
  else if (action == "eio")
    f.action = Fault::Action::eio;
  else if (action == "short")
    f.action = Fault::Action::short_read;
  else if (action == "nodirect")
    f.action = Fault::Action::no_direct;
  else
    return bad("unknown action");
  if (stage == "probe")
    f.stage = Fault::Stage::probe;
  else if (stage == "fill")
    f.stage = Fault::Stage::fill;
  else if (stage == "start")
    f.stage = Fault::Stage::start;
  else if (stage == "read")
    f.stage = Fault::Stage::read;
  else
    return bad("unknown stage");
  // The start-up fault acts before any job, and only it does then.
  if ((f.action == Fault::Action::impostor) != (f.stage == Fault::Stage::start))
    return bad("impostor goes with start, and start only with impostor");
  // The read faults change the fill's reads; they are nothing at another stage.
  const bool read_action = f.action == Fault::Action::eio ||
                           f.action == Fault::Action::short_read ||
                           f.action == Fault::Action::no_direct;
  if (read_action != (f.stage == Fault::Stage::read))
    return bad("eio, short and nodirect go with read, and read only with them");
  if (f.stage == Fault::Stage::start && !f.match.empty())
    return bad("start has no job to match");
  f.once_path = std::string(once);
  return f;
}

bool Fault::fires(Stage at, std::string_view weights_path) const {
  if (at != stage || (!match.empty() && weights_path.find(match) == std::string_view::npos))
    return false;
  if (once_path.empty()) return true;
  const int fd = ::open(once_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return false;  // another worker fired it already
  const std::string pid = std::to_string(::getpid()) + "\n";
  (void)!::write(fd, pid.data(), pid.size());
  ::close(fd);
  return true;
}

std::string trigger_fault(const Fault& fault) {
  switch (fault.action) {
    case Fault::Action::crash:
      ::signal(SIGSEGV, SIG_DFL);
      ::raise(SIGSEGV);
      break;
    case Fault::Action::hang:
      for (;;) ::pause();  // as a worker stuck in an uninterruptible read would
    case Fault::Action::exit:
      ::_exit(7);
    case Fault::Action::garbage:
      return std::string("\xc1\xc1\xc1 not msgpack", 16);
    case Fault::Action::stop:
      ::raise(SIGSTOP);
      return "";
    case Fault::Action::impostor:
      break;  // offer_impostor_channel
    case Fault::Action::eio:
    case Fault::Action::short_read:
    case Fault::Action::no_direct:
      break;  // the fill's reader applies them (jobs.cc)
  }
  std::abort();
}

int offer_impostor_channel(int ipc_fd, const Fault& fault) {
  const pid_t child = ::fork();
  if (child < 0) return 3;
  if (child == 0) {
    // The pair is this child's: its SO_PEERCRED names the child, not the worker.
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) ::_exit(3);
    if (!ipc::write_frame(ipc_fd, kChannelFrame, pair[1]).ok()) ::_exit(3);
    ::close(pair[1]);  // genomed holds the only copy: its close is an EOF here
    ::close(ipc_fd);
    auto frame = ipc::read_frame(pair[0], kArenaFrame.size(), std::nullopt, /*max_fds=*/1);
    const char* verdict = "other\n";
    if (frame && !frame->fds.empty()) verdict = "arena\n";
    if (!frame && frame.code() == Errc::not_connected) verdict = "refused\n";
    if (!fault.once_path.empty()) {
      const int fd = ::open(fault.once_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd >= 0) {
        (void)!::write(fd, verdict, std::strlen(verdict));
        ::close(fd);
      }
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return 0;
}

}  // namespace genomed::jobs
