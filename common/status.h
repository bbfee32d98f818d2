// Status and Result<T> live in the public include (the client library returns
// them too); this header adds the propagation macros module code uses.
#pragma once

#include "genomed/result.h"

#define GENOMED_CONCAT_INNER(a, b) a##b
#define GENOMED_CONCAT(a, b) GENOMED_CONCAT_INNER(a, b)

// Evaluates `expr` (a Result<T>); on failure returns its Status from the
// enclosing function, else assigns the value to `lhs` (a declaration or lvalue).
#define GENOMED_ASSIGN_OR_RETURN(lhs, expr)                    \
  auto GENOMED_CONCAT(genomed_result_, __LINE__) = (expr);     \
  if (!GENOMED_CONCAT(genomed_result_, __LINE__).ok())         \
    return GENOMED_CONCAT(genomed_result_, __LINE__).status(); \
  lhs = std::move(GENOMED_CONCAT(genomed_result_, __LINE__)).value()

// Evaluates `expr` (a Status); returns it from the enclosing function on failure.
#define GENOMED_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::genomed::Status genomed_status_ = (expr);        \
    if (!genomed_status_.ok()) return genomed_status_; \
  } while (0)
