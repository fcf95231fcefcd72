#include "tinymq/auth/password_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <climits>
#include <mutex>
#include <unordered_map>

namespace tinymq::auth {
namespace {

std::string Base64(const std::vector<std::uint8_t>& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Standard base64 with padding; nullopt-like empty result and false for anything else.
bool Unbase64(std::string_view text, std::vector<std::uint8_t>& out) {
  if (text.empty() || text.size() % 4 != 0 || text.size() > INT_MAX / 2) {
    return false;
  }
  out.assign(3 * text.size() / 4, 0);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return false;
  }
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t size = static_cast<std::size_t>(n);
  for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) {
    --size;
  }
  out.resize(size);
  return true;
}

bool Derive(std::string_view password, const std::vector<std::uint8_t>& salt,
            std::uint32_t iterations, std::vector<std::uint8_t>& out) {
  out.assign(kHashBytes, 0);
  return iterations <= INT_MAX &&
         PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                           static_cast<int>(salt.size()), static_cast<int>(iterations),
                           EVP_sha512(), static_cast<int>(out.size()), out.data()) == 1;
}

}  // namespace

util::Result<std::string, std::string> HashPassword(std::string_view password,
                                                    std::uint32_t iterations) {
  PasswordHash h;
  h.iterations = iterations;
  h.salt.assign(kSaltBytes, 0);
  if (RAND_bytes(h.salt.data(), static_cast<int>(h.salt.size())) != 1) {
    return util::Unexpected(std::string("no random bytes for a salt (OpenSSL RAND_bytes)"));
  }
  if (iterations == 0 || !Derive(password, h.salt, iterations, h.hash)) {
    return util::Unexpected(std::string("cannot hash the password (PBKDF2)"));
  }
  return "$7$" + std::to_string(iterations) + "$" + Base64(h.salt) + "$" + Base64(h.hash);
}

util::Result<PasswordHash, std::string> ParseHash(std::string_view text) {
  // $7$iterations$salt$hash
  if (!text.starts_with("$7$")) {
    return util::Unexpected(std::string(
        text.starts_with("$6$") ? "a SHA-512 hash without iterations ($6$): rehash it with "
                                  "tinymq-passwd or mosquitto_passwd -H sha512-pbkdf2"
                                : "not a PBKDF2-SHA512 hash ($7$...)"));
  }
  text.remove_prefix(3);
  const std::size_t a = text.find('$');
  const std::size_t b = a == std::string_view::npos ? a : text.find('$', a + 1);
  if (b == std::string_view::npos || text.find('$', b + 1) != std::string_view::npos) {
    return util::Unexpected(std::string("expected $7$iterations$salt$hash"));
  }
  PasswordHash h;
  const std::string_view iterations = text.substr(0, a);
  const auto [end, ec] =
      std::from_chars(iterations.data(), iterations.data() + iterations.size(), h.iterations);
  if (ec != std::errc() || end != iterations.data() + iterations.size() || h.iterations == 0 ||
      h.iterations > INT_MAX) {
    return util::Unexpected("bad iteration count '" + std::string(iterations) + "'");
  }
  if (!Unbase64(text.substr(a + 1, b - a - 1), h.salt)) {
    return util::Unexpected(std::string("the salt is not base64"));
  }
  if (!Unbase64(text.substr(b + 1), h.hash) || h.hash.size() != kHashBytes) {
    return util::Unexpected(std::string("the hash is not 64 bytes of base64"));
  }
  return h;
}

bool Matches(const PasswordHash& h, std::string_view password) {
  std::vector<std::uint8_t> derived;
  return Derive(password, h.salt, h.iterations, derived) && derived.size() == h.hash.size() &&
         CRYPTO_memcmp(derived.data(), h.hash.data(), derived.size()) == 0;
}

util::Result<PasswordFile, std::string> PasswordFile::Parse(std::string_view text) {
  PasswordFile file;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const std::size_t colon = line.find(':');
    auto fail = [&](std::string why) {
      return util::Unexpected("line " + std::to_string(number) + ": " + why);
    };
    if (colon == std::string_view::npos) {
      return fail("expected username:hash");
    }
    const std::string_view user = line.substr(0, colon);
    if (user.empty()) {
      return fail("empty user name");
    }
    util::Result<PasswordHash, std::string> h = ParseHash(line.substr(colon + 1));
    if (!h) {
      return fail("user '" + std::string(user) + "': " + h.error());
    }
    if (!file.users_.emplace(std::string(user), std::move(*h)).second) {
      return fail("user '" + std::string(user) + "' is listed twice");
    }
  }
  return file;
}

util::Result<std::string, std::string> WithUser(std::string_view text, std::string_view user,
                                                std::string_view hash) {
  if (user.empty() || user.find_first_of(":\r\n") != std::string_view::npos) {
    return util::Unexpected("a user name must be non-empty, without ':' or a line break: '" +
                            std::string(user) + "'");
  }
  if (auto parsed = PasswordFile::Parse(text); !parsed) {
    return util::Unexpected(parsed.error());
  }
  std::string out;
  bool found = false;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol == std::string_view::npos ? text.size() : eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.size() > user.size() && line.starts_with(user) && line[user.size()] == ':') {
      found = true;
      if (!hash.empty()) {
        out.append(user).append(":").append(hash).append("\n");
      }
      continue;
    }
    out.append(line).append("\n");
  }
  if (!found && hash.empty()) {
    return util::Unexpected("no user '" + std::string(user) + "' in the file");
  }
  if (!found) {
    out.append(user).append(":").append(hash).append("\n");
  }
  return out;
}

bool PasswordFile::Verify(std::string_view user, std::string_view password) const {
  auto it = users_.find(user);
  return it != users_.end() && Matches(it->second, password);
}

struct PasswordChecker::Memory {
  struct Entry {
    std::array<std::uint8_t, 32> mac{};
    std::vector<std::uint8_t> hash;  // the hash `mac`'s password verified against
  };
  std::size_t capacity = 0;
  std::array<std::uint8_t, 32> key{};
  mutable std::mutex mutex;
  std::unordered_map<std::string, Entry> users;
  std::uint64_t hits = 0;

  std::array<std::uint8_t, 32> Mac(std::string_view password) const {
    std::array<std::uint8_t, 32> out{};
    unsigned int n = 0;
    ::HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(password.data()), password.size(), out.data(),
           &n);
    return out;
  }
};

PasswordChecker::PasswordChecker(std::size_t capacity) : memory_(std::make_unique<Memory>()) {
  memory_->capacity = capacity;
  if (RAND_bytes(memory_->key.data(), static_cast<int>(memory_->key.size())) != 1) {
    memory_->capacity = 0;  // no key, no memory: every check runs PBKDF2
  }
}

PasswordChecker::~PasswordChecker() = default;

bool PasswordChecker::Check(const PasswordFile& file, std::string_view user,
                            std::string_view password) {
  const PasswordHash* h = file.Find(user);
  if (h == nullptr) {
    return false;
  }
  Memory& m = *memory_;
  if (m.capacity == 0) {
    return Matches(*h, password);
  }
  const std::array<std::uint8_t, 32> mac = m.Mac(password);
  {
    const std::lock_guard<std::mutex> lock(m.mutex);
    const auto it = m.users.find(std::string(user));
    if (it != m.users.end() && it->second.hash == h->hash &&
        CRYPTO_memcmp(it->second.mac.data(), mac.data(), mac.size()) == 0) {
      ++m.hits;
      return true;
    }
  }
  if (!Matches(*h, password)) {
    return false;
  }
  const std::lock_guard<std::mutex> lock(m.mutex);
  if (m.users.size() >= m.capacity) {
    m.users.clear();
  }
  m.users[std::string(user)] = Memory::Entry{mac, h->hash};
  return true;
}

std::uint64_t PasswordChecker::remembered_hits() const {
  const std::lock_guard<std::mutex> lock(memory_->mutex);
  return memory_->hits;
}

}  // namespace tinymq::auth
