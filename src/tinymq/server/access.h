#pragma once

#include <memory>
#include <string>

#include "tinymq/broker/broker.h"
#include "tinymq/config/config.h"
#include "tinymq/util/result.h"

// The access policy of a configuration ([auth]): its password file and ACL file read and parsed,
// and whether anonymous clients are let in. Made at start-up and again on each reload; every
// worker's broker gets the same one (broker::Broker::SetAccess).
//
// Threading: Thread-safe (pure function of its arguments and the files).
// Errors:    one line naming the file and what is wrong ("auth.password_file users.txt: line 3:
//            expected username:hash").

namespace tinymq::server {

util::Result<std::shared_ptr<const broker::AccessPolicy>, std::string> LoadAccess(
    const config::Config& config);

// One line for the start-up log: who may connect ("passwords from FILE, no anonymous clients,
// ACL from FILE").
std::string DescribeAccess(const config::Config& config, const broker::AccessPolicy& policy);

}  // namespace tinymq::server
