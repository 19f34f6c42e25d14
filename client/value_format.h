// How tunectl writes single values for people (tables, progress bar, event lines): money,
// durations, rates, counts, times. JSON output never goes through these.
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_CLIENT_VALUE_FORMAT_H_
#define TUNELEDGER_CLIENT_VALUE_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "google/protobuf/timestamp.pb.h"

namespace tuneledger::client {

// Money shown together (a table column, the parts of one line) uses one number of decimals, so
// that "$0.0099" never sits above "$0.01": 4 when any non-zero amount is below one cent (2
// decimals would round it away), else 2.
int UsdDecimals(const std::vector<double>& amounts);
// "$12.34", "$1,234.50", "$1,200,000.00" with 2 decimals; "$0.0042" with 4; negative with a
// leading "-"; "-" for NaN.
std::string FormatUsd(double usd, int decimals);
// One amount on its own: FormatUsd(usd, UsdDecimals({usd})).
std::string FormatUsd(double usd);
// Each amount with the decimals of the whole set (a column).
std::vector<std::string> FormatUsdColumn(const std::vector<double>& amounts);
// "0s", "0.3s", "5.0s" (tenths below 10 s, so a short run does not read as 0s), "45s", "3m12s",
// "1h05m", "2d03h"; "--" when negative, NaN or infinite (unknown).
std::string FormatDuration(double seconds);
// 3 significant digits with k/M/G: "137", "1.23k", "45.6M".
std::string FormatCount(double value);
// 0.5 -> "50%", 0.125 -> "12.5%", 6.9e-7 -> "0.000069%" (small shares keep 2 digits).
std::string FormatPercent(double fraction);
// A loss or other small real: 4 decimals, or scientific when tiny/huge; "nan", "inf".
std::string FormatReal(double value);
// Local time "2026-11-28 20:41:07"; "-" when unset (seconds and nanos both 0).
std::string FormatTimestamp(const google::protobuf::Timestamp& time);
// Local time of day "20:41:07"; "--:--:--" when unset.
std::string FormatTimeOfDay(const google::protobuf::Timestamp& time);
// Number of Unicode code points in UTF-8 text (the width a terminal gives most text).
size_t DisplayWidth(const std::string& utf8);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_VALUE_FORMAT_H_
