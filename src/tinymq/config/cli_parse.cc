#include "tinymq/config/cli_parse.h"

// CLI11's header-only code trips GCC 12's -Wnull-dereference once inlined at -O2 (a false
// positive inside std::string in CLI::detail::split); it is not our code to change.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <vector>

namespace tinymq::config {

util::Result<std::optional<std::string>, std::string> RunCliParser(CLI::App& app, int argc,
                                                                   const char* const* argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return std::optional<std::string>(app.help());
  } catch (const CLI::ParseError& e) {
    return util::Unexpected(std::string(e.what()) + " (try --help)");
  }
  if (const std::vector<std::string> extra = app.remaining(); !extra.empty()) {
    const std::string& first = extra.front();
    const bool is_option = first.size() > 1 && first[0] == '-';
    return util::Unexpected((is_option ? "unknown option '" : "unexpected argument '") + first +
                            "' (try --help)");
  }
  return std::optional<std::string>();
}

}  // namespace tinymq::config
