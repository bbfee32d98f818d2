// The docs' reference tables against what the code does, as
// tests/docs/check_cli_docs.py (ctest Docs.CommandLineFlags) holds the flag
// tables to --help: a STATS key, an error code or a Prometheus metric added to
// the code and not to its table, or left in the table after the code dropped
// it, fails here naming it.
//   - docs/protocol.md "### stats": the keys of a real daemon's STATS reply,
//     in the order the daemon sends them (the list is built in two places,
//     the coordinator's counters and then the connections', so the daemon is
//     the one source);
//   - docs/protocol.md "## 5. Error codes": every genomed::Errc (number and
//     name, as errc_from_int and errc_name know them), `ok` aside;
//   - docs/operations.md "### Prometheus": the metric families (name and
//     type) a real daemon's GET /metrics serves.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "genomed/errc.h"
#include "integration/daemon_fixture.h"
#include "tools/testkit/http_probe.h"

namespace genomed::testing {
namespace {

std::string doc(const std::string& relative) {
  const std::string text = read_file(std::string(GENOMED_SOURCE_DIR) + "/" + relative);
  EXPECT_FALSE(text.empty()) << relative << " is missing or empty";
  return text;
}

// The lines under `heading` (a whole line, "### stats") up to the next
// heading of its level or above; fails the test if there is no such heading.
std::vector<std::string> section(const std::string& text, const std::string& heading) {
  const auto level = heading.find_first_not_of('#');
  std::vector<std::string> out;
  bool inside = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!inside) {
      inside = line == heading;
      continue;
    }
    const auto hashes = line.find_first_not_of('#');
    if (hashes > 0 && hashes != std::string::npos && hashes <= level && line[hashes] == ' ') break;
    out.push_back(line);
  }
  EXPECT_TRUE(inside) << "no heading '" << heading << "'";
  return out;
}

// The cells of a table row ("| a | b |" -> {"a", "b"}); empty for other lines
// and for the header's separator row. "\|" inside a cell is not a separator.
std::vector<std::string> cells(const std::string& line) {
  if (line.empty() || line[0] != '|' || line.starts_with("|---")) return {};
  std::vector<std::string> out;
  std::string cell;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '|' && line[i - 1] != '\\') {
      const auto b = cell.find_first_not_of(' ');
      const auto e = cell.find_last_not_of(' ');
      out.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return out;
}

// Every `code span` of `text` that matches `pattern` in full, in order.
std::vector<std::string> code_spans(const std::string& text, const std::regex& pattern) {
  std::vector<std::string> out;
  static const std::regex kSpan("`([^`]+)`");
  for (std::sregex_iterator it(text.begin(), text.end(), kSpan), end; it != end; ++it) {
    const std::string span = (*it)[1];
    if (std::regex_match(span, pattern)) out.push_back(span);
  }
  return out;
}

template <typename Container>
std::string joined(const Container& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// What one list has that the other lacks, and the values they differ in, as
// test failures (a value is the code's name of a number, a metric's type).
template <typename Key>
void expect_same_keys(const std::map<Key, std::string>& code,
                      const std::map<Key, std::string>& docs, const std::string& what,
                      const std::string& where) {
  const auto named = [](const auto& key, const std::string& value) {
    std::ostringstream out;
    out << key << (value.empty() ? "" : " " + value);
    return out.str();
  };
  for (const auto& [key, value] : code) {
    const auto it = docs.find(key);
    if (it == docs.end()) {
      ADD_FAILURE() << what << " " << named(key, value) << " is in the code but not in " << where;
    } else {
      EXPECT_EQ(it->second, value) << what << " " << key << ": " << where << " says '"
                                   << it->second << "', the code '" << value << "'";
    }
  }
  for (const auto& [key, value] : docs) {
    if (!code.contains(key))
      ADD_FAILURE() << what << " " << named(key, value) << " is in " << where
                    << " but not in the code";
  }
}

const std::regex kSnakeName("[a-z][a-z0-9_]*");

TEST(Docs, StatsKeysAndTheirOrderAreThoseOfProtocolMd) {
  std::vector<std::string> documented;
  for (const auto& line : section(doc("docs/protocol.md"), "### stats")) {
    const auto row = cells(line);
    if (row.empty()) continue;
    const auto key = code_spans(row[0], kSnakeName);
    if (key.size() == 1) documented.push_back(key[0]);
  }
  ASSERT_FALSE(documented.empty()) << "docs/protocol.md '### stats' has no key table";

  Daemon daemon({.workers = 1});
  auto stats = daemon.connect().stats();
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  std::vector<std::string> sent;
  for (const auto& [key, value] : *stats) sent.push_back(key);

  std::map<std::string, std::string> sent_keys, documented_keys;  // the keys, no values
  for (const auto& key : sent) sent_keys[key];
  for (const auto& key : documented) documented_keys[key];
  expect_same_keys(sent_keys, documented_keys, "STATS key", "docs/protocol.md '### stats'");
  EXPECT_EQ(sent, documented) << "STATS sends its keys in this order:\n  " << joined(sent)
                              << "\ndocs/protocol.md '### stats' lists them so:\n  "
                              << joined(documented);
}

TEST(Docs, ErrorCodesAreThoseOfProtocolMdsTable) {
  std::map<std::uint64_t, std::string> documented;
  for (const auto& line : section(doc("docs/protocol.md"), "## 5. Error codes")) {
    const auto row = cells(line);
    if (row.size() < 2 || !std::regex_match(row[0], std::regex("[0-9]+"))) continue;
    const auto name = code_spans(row[1], kSnakeName);
    ASSERT_EQ(name.size(), 1u) << "error table row without one `name`: " << line;
    EXPECT_TRUE(documented.emplace(std::stoull(row[0]), name[0]).second)
        << "error code " << row[0] << " is in the table twice";
  }
  ASSERT_FALSE(documented.empty()) << "docs/protocol.md '## 5. Error codes' has no table";

  std::map<std::uint64_t, std::string> defined;  // Errc is a uint16_t: every value is tried
  for (std::uint64_t v = 1; v <= 0xffff; ++v) {
    if (const auto code = errc_from_int(v)) defined.emplace(v, std::string(errc_name(*code)));
  }
  expect_same_keys(defined, documented, "error code", "docs/protocol.md '## 5. Error codes'");
}

TEST(Docs, PrometheusMetricsAreThoseOfOperationsMd) {
  // name -> type, from the table's rows: a row whose metric is a pattern
  // (`genomed_<key>_total`) stands for each STATS key its last column lists.
  std::map<std::string, std::string> documented;
  const auto add = [&](const std::string& name, const std::string& type) {
    EXPECT_TRUE(documented.emplace(name, type).second) << name << " is in the table twice";
  };
  const std::string heading = "### Prometheus (`--metrics-listen`)";
  for (const auto& line : section(doc("docs/operations.md"), heading)) {
    const auto row = cells(line);
    if (row.size() < 3) continue;
    const auto metric = code_spans(row[0], std::regex("genomed_.*"));
    if (metric.size() != 1) continue;
    const std::string name = metric[0].substr(0, metric[0].find('{'));
    const auto hole = name.find("<key>");
    if (hole == std::string::npos) {
      add(name, row[1]);
      continue;
    }
    for (const auto& key : code_spans(row[2], kSnakeName))
      add(name.substr(0, hole) + key + name.substr(hole + 5), row[1]);
  }
  ASSERT_FALSE(documented.empty()) << "docs/operations.md '### Prometheus' has no metric table";

  Daemon daemon({.workers = 1, .extra_args = {"--metrics-listen", "127.0.0.1:0"}});
  std::smatch port;
  const std::string log = daemon.log();
  ASSERT_TRUE(std::regex_search(log, port,
                                std::regex(R"(Prometheus metrics on http://127\.0\.0\.1:(\d+)/)")))
      << log;
  const auto scrape = testkit::http_exchange(
      static_cast<std::uint16_t>(std::stoi(port[1])),
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(scrape.status, 200) << scrape.body;
  std::map<std::string, std::string> served;
  static const std::regex kType(R"(# TYPE (\S+) (\S+))");
  for (std::sregex_iterator it(scrape.body.begin(), scrape.body.end(), kType), end; it != end; ++it)
    served[(*it)[1]] = (*it)[2];
  ASSERT_FALSE(served.empty()) << scrape.body;
  expect_same_keys(served, documented, "metric", "docs/operations.md '### Prometheus'");
}

}  // namespace
}  // namespace genomed::testing
