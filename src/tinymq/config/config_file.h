#pragma once

#include <string>
#include <string_view>

#include "tinymq/config/config.h"
#include "tinymq/util/result.h"

// Reads tinymq's TOML configuration (format and every key: docs/configuration.md) into a Config.
// Keys that are absent keep their defaults; keys that are unknown are errors, so that a typo never
// passes silently.
//
// Threading: Thread-safe (no shared state).
// Lifetime:  the returned Config owns everything; nothing refers to `text` afterwards.
// Errors:    never throws. Every error is one line naming where it is:
//              "<source>: <key>: <problem>"   e.g. "tinymq.toml: limits.max_inflight: must be
//                                             between 1 and 65535, got 0"
//              "<source>:<line>:<column>: <problem>"  for TOML syntax errors
//              "<path>: cannot read: <reason>"        when the file cannot be read

namespace tinymq::config {

// Parses `text`; `source` names it in messages (normally the file's path).
util::Result<Config, std::string> ParseConfig(std::string_view text, std::string_view source);

// Reads and parses the file at `path`.
util::Result<Config, std::string> LoadConfigFile(const std::string& path);

}  // namespace tinymq::config
