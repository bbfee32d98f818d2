// Setters and --help text of the operator flags (loader/ops_options.h), merged
// into loader/config.cc's tables so config.cc stays about loading adapters.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "common/status.h"

namespace genomed::loader {

struct DaemonConfig;

// Applies one setting from its text; `key` names it in errors.
using Setter =
    std::function<Status(DaemonConfig&, const std::string& key, const std::string& value)>;

// The operator settings by config key (the flag name with '_' for '-').
std::map<std::string, Setter> ops_setters();
// Keys whose JSON value is a string (the others of ops_setters() take a
// string or an integer: a uid, a gid, a size).
bool ops_key_is_string(const std::string& key);
// The --help section of these flags.
std::string ops_usage_text();

}  // namespace genomed::loader
