// GENOMED_CHECK: an assertion that stays on in release builds. The cache's
// bookkeeping guards memory that clients read while it is reused; a misuse
// (double free, releasing an unleased entry) must stop the daemon loudly
// rather than silently hand one range to two adapters.
#pragma once

#include <cstdio>
#include <cstdlib>

#define GENOMED_CHECK(cond, what)                                                              \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, what); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)
