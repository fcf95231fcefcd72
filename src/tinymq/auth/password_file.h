#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/util/result.h"

// Password files: one `username:hash` per line, the hash in Mosquitto's PBKDF2 form, so that a
// file written by `mosquitto_passwd` (hash type 7) works here unchanged:
//
//   $7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512 of the password, base64>
//
// Empty lines and lines starting with '#' are ignored. Hashing and verification go through
// OpenSSL (PKCS5_PBKDF2_HMAC); the comparison takes the same time whatever the bytes.
//
// Threading: Thread-compatible; a loaded PasswordFile is immutable (Verify is const).
// Errors:    Parse names the line and what is wrong with it; nothing throws.

namespace tinymq::auth {

// Iterations of a new hash: OWASP's 2023 advice for PBKDF2-HMAC-SHA512 is 210,000.
inline constexpr std::uint32_t kDefaultIterations = 210'000;
inline constexpr std::size_t kSaltBytes = 12;  // as mosquitto_passwd
inline constexpr std::size_t kHashBytes = 64;  // SHA-512

struct PasswordHash {
  std::uint32_t iterations = 0;
  std::vector<std::uint8_t> salt;
  std::vector<std::uint8_t> hash;
};

// "$7$..." for `password` with a fresh random salt (OpenSSL's RAND_bytes); an error only when
// the system has no randomness to give.
util::Result<std::string, std::string> HashPassword(std::string_view password,
                                                    std::uint32_t iterations = kDefaultIterations);
// The parts of a "$7$..." string; an error saying what is wrong.
util::Result<PasswordHash, std::string> ParseHash(std::string_view text);
// True when `password` hashes to `h`.
bool Matches(const PasswordHash& h, std::string_view password);

// The contents of password file `text` with `user`'s line set to `user:hash` (appended when the
// user is new) or, when `hash` is empty, removed; other lines (comments too) stay as they are.
// Errors: `text` does not parse (Parse's message), a user name that cannot be in the file
// (empty, or with ':' or a line break), removing a user who is not there.
util::Result<std::string, std::string> WithUser(std::string_view text, std::string_view user,
                                                std::string_view hash);

class PasswordFile {
 public:
  // `text`: the file's contents. Errors: "line N: ..." (a missing ':', an empty user name, a user
  // listed twice, a hash that is not type 7).
  static util::Result<PasswordFile, std::string> Parse(std::string_view text);

  bool Contains(std::string_view user) const { return users_.find(user) != users_.end(); }
  // `user`'s hash, or null.
  const PasswordHash* Find(std::string_view user) const {
    const auto it = users_.find(user);
    return it == users_.end() ? nullptr : &it->second;
  }
  // True when `user` is listed and `password` is theirs.
  bool Verify(std::string_view user, std::string_view password) const;
  std::size_t size() const { return users_.size(); }

 private:
  std::map<std::string, PasswordHash, std::less<>> users_;
};

// Verify with a memory of the passwords that verified: a fleet that reconnects at once (after a
// restart, a network outage) costs one PBKDF2 per user, not one per connection. What is kept per
// user is an HMAC-SHA256 of the password under a key drawn at random when the checker is made
// (never written anywhere), together with the hash it verified against, so that a changed
// password file (another hash for the user) is never answered from memory. A wrong password is
// never remembered: each one costs the full PBKDF2.
//
// Threading: Thread-safe (a mutex around the memory; PBKDF2 runs outside it).
class PasswordChecker {
 public:
  // At most `capacity` users remembered (all are forgotten when it is full).
  explicit PasswordChecker(std::size_t capacity = 100'000);
  ~PasswordChecker();
  PasswordChecker(const PasswordChecker&) = delete;
  PasswordChecker& operator=(const PasswordChecker&) = delete;

  // As file.Verify(user, password).
  bool Check(const PasswordFile& file, std::string_view user, std::string_view password);

  std::uint64_t remembered_hits() const;

 private:
  struct Memory;
  std::unique_ptr<Memory> memory_;
};

}  // namespace tinymq::auth
