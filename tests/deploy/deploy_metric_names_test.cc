// Every metric name that deploy/ queries (alert rules, their tests, the Grafana dashboard) is
// one ServerMetrics exports, so renaming a metric without updating deploy/ fails here instead
// of silently leaving an alert that never fires or a panel that is always empty.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/metrics/server_metrics.h"

namespace tuneledger {
namespace {

using ::testing::IsSupersetOf;
using ::testing::IsTrue;

std::string ReadRepoFile(const std::string& relative_path) {
  const std::string path = std::string(TUNELEDGER_SOURCE_DIR) + "/" + relative_path;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every token that looks like one of our metric names. Alert names (TuneledgerJob...), group
// names (tuneledger.budget) and the datasource uid (tuneledger-prometheus) do not match.
std::set<std::string> MetricNamesIn(const std::string& text) {
  static const std::regex kMetricName(R"(\btuneledger_[a-z0-9_]*[a-z0-9])");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kMetricName);
       it != std::sregex_iterator(); ++it) {
    names.insert(it->str());
  }
  return names;
}

std::set<std::string> Exported() {
  const std::vector<std::string> names = ServerMetrics::ExposedMetricNames();
  return {names.begin(), names.end()};
}

// The dashboard's queries: every panel target's expr and every template variable's query.
std::string DashboardQueries() {
  const nlohmann::json dashboard =
      nlohmann::json::parse(ReadRepoFile("deploy/grafana/dashboards/tuneledger.json"));
  std::string queries;
  std::vector<nlohmann::json> panels = dashboard.at("panels").get<std::vector<nlohmann::json>>();
  for (size_t i = 0; i < panels.size(); ++i) {
    for (const nlohmann::json& nested : panels[i].value("panels", nlohmann::json::array())) {
      panels.push_back(nested);
    }
    for (const nlohmann::json& target : panels[i].value("targets", nlohmann::json::array())) {
      queries += target.value("expr", "") + "\n";
    }
  }
  for (const nlohmann::json& variable : dashboard.at("templating").at("list")) {
    queries += variable.value("definition", "") + "\n";
  }
  return queries;
}

void ExpectAllExported(const std::set<std::string>& used, const std::string& where) {
  const std::set<std::string> exported = Exported();
  for (const std::string& name : used) {
    EXPECT_THAT(exported.count(name) == 1, IsTrue())
        << where << " uses " << name << ", which ServerMetrics does not export";
  }
}

TEST(DeployMetricNamesTest, TheNameScanFindsNamesAndNothingElse) {
  EXPECT_EQ(
      MetricNamesIn("sum by (le) (rate(tuneledger_rpc_duration_seconds_bucket[1m])) "
                    "TuneledgerJobLossNaN tuneledger.fleet tuneledger-prometheus "
                    "tuneledger_job_loss{job_id=~\"$job_id\"}"),
      (std::set<std::string>{"tuneledger_rpc_duration_seconds_bucket", "tuneledger_job_loss"}));
}

TEST(DeployMetricNamesTest, AlertRulesUseOnlyExportedNames) {
  const std::set<std::string> used = MetricNamesIn(ReadRepoFile("deploy/prometheus/rules.yml"));
  EXPECT_THAT(used, IsSupersetOf({"tuneledger_job_accrued_cost_usd", "tuneledger_job_budget_usd",
                                  "tuneledger_job_projected_cost_usd", "tuneledger_job_loss",
                                  "tuneledger_queue_depth", "tuneledger_workers"}));
  ExpectAllExported(used, "deploy/prometheus/rules.yml");
}

TEST(DeployMetricNamesTest, AlertRuleTestsUseOnlyExportedNames) {
  const std::set<std::string> used =
      MetricNamesIn(ReadRepoFile("deploy/prometheus/rules_test.yml"));
  EXPECT_GE(used.size(), 6u);
  ExpectAllExported(used, "deploy/prometheus/rules_test.yml");
}

TEST(DeployMetricNamesTest, DashboardQueriesUseOnlyExportedNames) {
  const std::set<std::string> used = MetricNamesIn(DashboardQueries());
  EXPECT_THAT(
      used, IsSupersetOf({"tuneledger_queue_depth", "tuneledger_jobs", "tuneledger_workers",
                          "tuneledger_job_loss", "tuneledger_job_eval_loss",
                          "tuneledger_job_tokens_per_second", "tuneledger_job_accrued_cost_usd",
                          "tuneledger_job_budget_usd", "tuneledger_job_budget_threshold_ratio",
                          "tuneledger_job_projected_cost_usd", "tuneledger_compute_cost_usd_total",
                          "tuneledger_rpc_duration_seconds_bucket"}));
  ExpectAllExported(used, "deploy/grafana/dashboards/tuneledger.json");
}

}  // namespace
}  // namespace tuneledger
