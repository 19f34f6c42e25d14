// Test helpers for reading a Prometheus text exposition: serialize a Registry the way the
// server's /metrics does, and parse it back into "name{labels}" -> value.
//
//   std::string text = ScrapeText(registry);
//   ScrapeSamples samples = ParseScrape(text);
//   EXPECT_EQ(samples.at(R"(tuneledger_queue_depth)"), 3);
#ifndef TUNELEDGER_TESTS_METRICS_SCRAPE_TEXT_H_
#define TUNELEDGER_TESTS_METRICS_SCRAPE_TEXT_H_

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace tuneledger::testing {

// Series as the exposition spells it (labels sorted, values escaped) -> sample value.
using ScrapeSamples = std::map<std::string, double>;

inline std::string ScrapeText(const prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

// Parses the sample lines ("series value"); comment lines are skipped. strtod reads "Nan",
// "+Inf" and "-Inf" as Prometheus does.
inline ScrapeSamples ParseScrape(const std::string& text) {
  ScrapeSamples samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    samples[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return samples;
}

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_METRICS_SCRAPE_TEXT_H_
