#include "client/value_format.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace tuneledger::client {
namespace {

// "1234567" -> "1,234,567"
std::string GroupThousands(const std::string& digits) {
  std::string out;
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

bool IsUnset(const google::protobuf::Timestamp& time) {
  return time.seconds() == 0 && time.nanos() == 0;
}

absl::Time ToAbslTime(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
}

}  // namespace

int UsdDecimals(const std::vector<double>& amounts) {
  for (double usd : amounts) {
    const double magnitude = std::fabs(usd);
    if (std::isfinite(magnitude) && magnitude > 0 && magnitude < 0.01) return 4;
  }
  return 2;
}

std::string FormatUsd(double usd, int decimals) {
  if (std::isnan(usd)) return "-";
  if (std::isinf(usd)) return usd > 0 ? "$inf" : "-$inf";
  const std::string sign = usd < 0 ? "-" : "";
  const std::string fixed = absl::StrFormat("%.*f", decimals, std::fabs(usd));
  const size_t dot = fixed.find('.');
  if (dot == std::string::npos) return absl::StrCat(sign, "$", GroupThousands(fixed));
  return absl::StrCat(sign, "$", GroupThousands(fixed.substr(0, dot)), fixed.substr(dot));
}

std::string FormatUsd(double usd) { return FormatUsd(usd, UsdDecimals({usd})); }

std::vector<std::string> FormatUsdColumn(const std::vector<double>& amounts) {
  const int decimals = UsdDecimals(amounts);
  std::vector<std::string> texts;
  texts.reserve(amounts.size());
  for (double usd : amounts) texts.push_back(FormatUsd(usd, decimals));
  return texts;
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--";
  if (seconds >= 0.05 && seconds < 9.95) {
    return absl::StrFormat("%.1fs", seconds);
  }
  const int64_t total = static_cast<int64_t>(std::llround(seconds));
  if (total < 60) return absl::StrFormat("%ds", total);
  if (total < 3600) return absl::StrFormat("%dm%02ds", total / 60, total % 60);
  if (total < 86400) return absl::StrFormat("%dh%02dm", total / 3600, (total % 3600) / 60);
  return absl::StrFormat("%dd%02dh", total / 86400, (total % 86400) / 3600);
}

std::string FormatCount(double value) {
  if (!std::isfinite(value)) return absl::StrCat(value);
  const double magnitude = std::fabs(value);
  const char* suffix = "";
  double scaled = value;
  if (magnitude >= 1e9) {
    scaled = value / 1e9;
    suffix = "G";
  } else if (magnitude >= 1e6) {
    scaled = value / 1e6;
    suffix = "M";
  } else if (magnitude >= 1e3) {
    scaled = value / 1e3;
    suffix = "k";
  } else {
    return absl::StrFormat("%.0f", value);
  }
  const double scaled_magnitude = std::fabs(scaled);
  const int decimals = scaled_magnitude >= 100 ? 0 : scaled_magnitude >= 10 ? 1 : 2;
  return absl::StrFormat("%.*f%s", decimals, scaled, suffix);
}

std::string FormatPercent(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  const double percent = fraction * 100;
  // Small shares keep two significant digits: the compute share of a model's whole bill is
  // often a tiny number, and "0%" would hide it.
  int decimals = 1;
  if (percent != 0 && std::fabs(percent) < 0.1) {
    decimals = static_cast<int>(std::ceil(-std::log10(std::fabs(percent)))) + 1;
  }
  std::string text = absl::StrFormat("%.*f", decimals, percent);
  if (decimals == 1 && absl::EndsWith(text, ".0")) text.resize(text.size() - 2);
  return absl::StrCat(text, "%");
}

std::string FormatReal(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  const double magnitude = std::fabs(value);
  if (magnitude != 0 && (magnitude < 1e-3 || magnitude >= 1e6)) {
    return absl::StrFormat("%.3e", value);
  }
  return absl::StrFormat("%.4f", value);
}

std::string FormatTimestamp(const google::protobuf::Timestamp& time) {
  if (IsUnset(time)) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", ToAbslTime(time), absl::LocalTimeZone());
}

std::string FormatTimeOfDay(const google::protobuf::Timestamp& time) {
  if (IsUnset(time)) return "--:--:--";
  return absl::FormatTime("%H:%M:%S", ToAbslTime(time), absl::LocalTimeZone());
}

size_t DisplayWidth(const std::string& utf8) {
  size_t width = 0;
  for (unsigned char c : utf8) {
    if ((c & 0xC0) != 0x80) ++width;  // count every byte that starts a code point
  }
  return width;
}

}  // namespace tuneledger::client
