#ifndef SEGSERVE_COMMON_STATUS_MACROS_H_
#define SEGSERVE_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Early returns for functions that return absl::Status or absl::StatusOr,
// as TF Serving's TF_RETURN_IF_ERROR and Triton's RETURN_IF_ERROR:
//
//   SEGSERVE_RETURN_IF_ERROR(Check(request));
//   SEGSERVE_ASSIGN_OR_RETURN(auto model, repository.Find(name, version));

// Returns the status of `expr` (an absl::Status) unless it is OK.
#define SEGSERVE_RETURN_IF_ERROR(expr)                                      \
  do {                                                                      \
    if (::absl::Status segserve_status_ = (expr); !segserve_status_.ok()) { \
      return segserve_status_;                                              \
    }                                                                       \
  } while (false)

// Evaluates `expr` (an absl::StatusOr<T>); returns its status unless it is
// OK, else moves its value into `lhs` (a declaration or an lvalue).
#define SEGSERVE_ASSIGN_OR_RETURN(lhs, expr) \
  SEGSERVE_ASSIGN_OR_RETURN_IMPL_(           \
      SEGSERVE_STATUS_MACROS_CONCAT_(segserve_statusor_, __LINE__), lhs, expr)

#define SEGSERVE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = *std::move(statusor)

#define SEGSERVE_STATUS_MACROS_CONCAT_INNER_(x, y) x##y
#define SEGSERVE_STATUS_MACROS_CONCAT_(x, y) \
  SEGSERVE_STATUS_MACROS_CONCAT_INNER_(x, y)

#endif  // SEGSERVE_COMMON_STATUS_MACROS_H_
