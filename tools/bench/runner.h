#pragma once

#include <atomic>
#include <string>

#include "tinymq/util/result.h"
#include "tools/bench/options.h"
#include "tools/bench/report.h"

// Runs one benchmark from validated options: resolves the broker, checks the open-file limit,
// starts the worker threads, sets every connection up, then runs warm-up, measurement and drain,
// printing a progress line each second on stderr (unless options.quiet), and gathers the Report.
//
// Threading: call from one thread; it starts and joins options.threads workers.
// Errors:    a one-line message when the run cannot happen or cannot go on: host not resolved,
//            RLIMIT_NOFILE too low, a connection refused or closed during set-up, a CONNACK or
//            SUBACK refusal, set-up not finished within its bound. A connection the broker closes
//            after set-up is not an error here: the Report counts it.

namespace tinymq::bench {

// `interrupted` (may be null): when it becomes true, sending stops and the run drains and reports.
util::Result<Report, std::string> RunBenchmark(const Options& options,
                                               const std::atomic<bool>* interrupted);

}  // namespace tinymq::bench
