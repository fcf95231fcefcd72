#include "tinymq/server/access.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>

#include "tinymq/auth/acl.h"
#include "tinymq/auth/password_file.h"

namespace tinymq::server {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

util::Result<std::string, std::string> ReadWhole(const std::string& path) {
  const std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    return util::Unexpected("cannot read: " + std::string(std::strerror(errno)));
  }
  std::string text;
  char chunk[4096];
  std::size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, file.get())) > 0) {
    text.append(chunk, n);
  }
  if (std::ferror(file.get())) {  // EISDIR: fopen() succeeds on a directory, fread() fails
    return util::Unexpected("cannot read: " + std::string(std::strerror(errno)));
  }
  return text;
}

}  // namespace

util::Result<std::shared_ptr<const broker::AccessPolicy>, std::string> LoadAccess(
    const config::Config& config) try {
  auto policy = std::make_shared<broker::AccessPolicy>();
  policy->allow_anonymous = config::AnonymousAllowed(config);
  policy->failure_delay = std::chrono::milliseconds(config.auth.failure_delay_ms);
  if (const std::string& path = config.auth.password_file; !path.empty()) {
    util::Result<std::string, std::string> text = ReadWhole(path);
    if (!text) {
      return util::Unexpected("auth.password_file " + path + ": " + text.error());
    }
    util::Result<auth::PasswordFile, std::string> file = auth::PasswordFile::Parse(*text);
    if (!file) {
      return util::Unexpected("auth.password_file " + path + ": " + file.error());
    }
    policy->passwords = std::make_shared<const auth::PasswordFile>(std::move(*file));
  }
  if (const std::string& path = config.auth.acl_file; !path.empty()) {
    util::Result<auth::AclFile, std::string> acl = auth::AclFile::Load(path);
    if (!acl) {
      return util::Unexpected("auth.acl_file " + acl.error());
    }
    policy->acl = std::make_shared<const auth::AclFile>(std::move(*acl));
  }
  return std::shared_ptr<const broker::AccessPolicy>(std::move(policy));
} catch (const std::exception& e) {  // bad_alloc on a huge file: the contract is: no throw
  return util::Unexpected(std::string("auth: ") + e.what());
}

std::string DescribeAccess(const config::Config& config, const broker::AccessPolicy& policy) {
  std::string out;
  if (policy.passwords != nullptr) {
    out = "passwords from " + config.auth.password_file + " (" +
          std::to_string(policy.passwords->size()) + " users)";
  } else {
    out = "no password file (usernames are not checked)";
  }
  out += policy.allow_anonymous ? ", anonymous clients allowed" : ", no anonymous clients";
  out += policy.acl != nullptr ? ", ACL from " + config.auth.acl_file : ", no ACL";
  return out;
}

}  // namespace tinymq::server
