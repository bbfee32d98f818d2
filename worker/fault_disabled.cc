// Fault injection as a build without GENOMED_FAULT_INJECTION has it: the same
// interface as fault.cc, but every spec is refused, so neither genomed
// (--worker-fault) nor genome-worker (--fault) can be made to crash or hang
// on purpose, and none of the injection code is in the binaries.
#include <cstdlib>

#include "worker/fault.h"

namespace genomed::jobs {

bool fault_injection_built() { return false; }

Result<Fault> parse_fault(std::string_view) {
  return Status(Errc::bad_request,
                "fault injection is not compiled into this build (it is for tests only); "
                "configure with cmake -DGENOMED_FAULT_INJECTION=ON, as scripts/test.sh does");
}

bool Fault::fires(Stage, std::string_view) const { return false; }

// Unreachable: no Fault can be parsed, so none fires.
std::string trigger_fault(const Fault&) { std::abort(); }
int offer_impostor_channel(int, const Fault&) { std::abort(); }

}  // namespace genomed::jobs
