// The two status macros of the project (Debian's Abseil 20220623 has no status_macros.h).
//
//   TL_RETURN_IF_ERROR(expr);            // expr is an absl::Status; returns it when not OK
//   TL_ASSIGN_OR_RETURN(lhs, expr);      // expr is an absl::StatusOr<T>; lhs = *expr or return
//
// Both evaluate expr exactly once. lhs may declare a variable: TL_ASSIGN_OR_RETURN(auto x, F()).
#ifndef TUNELEDGER_BASE_STATUS_MACROS_H_
#define TUNELEDGER_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TL_RETURN_IF_ERROR(expr)              \
  do {                                        \
    const ::absl::Status tl_status_ = (expr); \
    if (!tl_status_.ok()) return tl_status_;  \
  } while (false)

#define TL_STATUS_CONCAT_INNER_(a, b) a##b
#define TL_STATUS_CONCAT_(a, b) TL_STATUS_CONCAT_INNER_(a, b)

#define TL_ASSIGN_OR_RETURN(lhs, expr) \
  TL_ASSIGN_OR_RETURN_IMPL_(TL_STATUS_CONCAT_(tl_statusor_, __LINE__), lhs, expr)

#define TL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)     \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // TUNELEDGER_BASE_STATUS_MACROS_H_
