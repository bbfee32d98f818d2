// genome-bench's report: the figures of a full run (bench/figures.h) as
// rows of the table (each figure beside its baseline, their ratio and its
// target), as the JSON keys, and the verdict printed after the table. The
// format is read by people and by scripts (scripts/plot_bench.sh,
// docs/performance.md's tables): row names, JSON keys and their order are
// kept as they are.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cold_load.h"
#include "figures.h"

namespace genomed::bench {

using Json = nlohmann::ordered_json;

// One line of the table.
struct Row {
  std::string figure;
  double value;
  std::string unit;
  std::string baseline;  // name of the baseline figure, or ""
  double baseline_value = NAN;
  double ratio = NAN;
  std::string target;       // "" = informational
  std::optional<bool> met;  // nullopt = no target
};

// The table, after a blank line.
void print_table(const std::vector<Row>& rows);
// Writes `j` to `path` and says so; false if it could not.
bool write_json(const std::string& path, const Json& j);
// "4 x 8 MiB reads".
std::string shape_name(const DirectReadShape& shape);

// Each step's rows and JSON figures, appended in the report's order: cold,
// hit, churn, dedup and pressure, cold from disk.
void cold_rows(const BenchAdapters& ad, const Baselines& b, const ColdFigures& cold1,
               const ColdFigures& coldn, std::vector<Row>& rows, Json& j);
void hit_rows(const HitFigures& h, std::vector<Row>& rows, Json& j);
// Whether the churn grew the daemon, by what it measures.
struct ChurnVerdict {
  bool resident_ok, rss_ok, fds_ok;
  bool ok() const { return resident_ok && rss_ok && fds_ok; }
};
ChurnVerdict churn_rows(const ChurnFigures& c, std::vector<Row>& rows, Json& j);
void dedup_and_pressure_rows(const DedupFigures& d, const PressureFigures& p,
                             std::vector<Row>& rows, Json& j);
void disk_rows(const DiskFigures& disk, std::vector<Row>& rows, Json& j);

// The lines after the table: what failed, and how many targets were met.
void print_verdict(bool quick, const std::vector<Row>& rows, const ChurnFigures& c,
                   const ChurnVerdict& churn, const DedupFigures& dedup, const DiskFigures& disk,
                   double total_s, Json& j);

}  // namespace genomed::bench
