#pragma once

#include <optional>
#include <string>

#include "tinymq/util/result.h"

// The part of command-line parsing that tinymq and tinymq-bench share: run a configured CLI11
// app over argv and turn its outcomes into values (no exceptions, no exit): --help, a parse
// error, or an argument the app does not know, each as the one-line message the CLI prints.
//
// Threading: Thread-compatible.
// Errors:    a one-line message ending in "(try --help)".

namespace CLI {
class App;
}  // namespace CLI

namespace tinymq::config {

// Parses argv with `app`, which must allow extras (app.allow_extras()) so that an unknown
// argument is reported here in our words. Returns the help text when --help was given, nullopt
// when the arguments parsed.
util::Result<std::optional<std::string>, std::string> RunCliParser(CLI::App& app, int argc,
                                                                   const char* const* argv);

}  // namespace tinymq::config
