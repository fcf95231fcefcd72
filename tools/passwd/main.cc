// tinymq-passwd: adds, changes and deletes users in a tinymq password file (auth/password_file.h;
// Mosquitto's PBKDF2-SHA512 format, so files of mosquitto_passwd -H sha512-pbkdf2 work too).
//
//   tinymq-passwd [-c] FILE USER            asks for the password twice (no echo on a terminal)
//   tinymq-passwd [-c] -b FILE USER PASS    the password on the command line (scripts)
//   tinymq-passwd -D FILE USER              deletes the user
//
// -c creates the file (refused when it exists, so that a typo cannot wipe a user list). The file
// is rewritten whole through a temporary file and rename(), mode 0600. Exit status 0 on success,
// 1 for a failure (a message names the file and the cause), 2 for a bad command line.

#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "tinymq/auth/password_file.h"
#include "tinymq/config/cli_parse.h"

namespace {

std::optional<std::string> ReadFile(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot read (" + std::strerror(errno) + ")";
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool WriteFile(const std::string& path, const std::string& text, std::string& error) {
  const std::string tmp = path + ".tmp";
  const mode_t old = ::umask(077);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  ::umask(old);
  bool ok = f != nullptr && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = f != nullptr && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0 && ok;
  if (f != nullptr) {
    ok = std::fclose(f) == 0 && ok;
  }
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": cannot write (" + std::strerror(errno) + ")";
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

// One line from stdin, without echo when it is a terminal.
std::optional<std::string> Prompt(const char* question) {
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  termios saved{};
  if (tty) {
    std::fputs(question, stderr);
    ::tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  const bool got = static_cast<bool>(std::getline(std::cin, line));
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::fputs("\n", stderr);
  }
  if (!got) {
    return std::nullopt;
  }
  if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("tinymq-passwd: manage the users of a tinymq password file", "tinymq-passwd");
  app.allow_extras();  // RunCliParser reports an unknown argument in our words
  bool create = false;
  bool batch = false;
  bool remove = false;
  std::uint32_t iterations = tinymq::auth::kDefaultIterations;
  std::string path;
  std::string user;
  std::string password_arg;
  app.add_flag("-c", create, "Create the file (refused when it exists)");
  app.add_flag("-b", batch, "Take the password from the command line");
  app.add_flag("-D", remove, "Delete the user");
  app.add_option("-I,--iterations", iterations, "PBKDF2 iterations of a new hash (default 210000)")
      ->check(CLI::Range(1U, 100'000'000U));
  app.add_option("file", path, "The password file")->required();
  app.add_option("user", user, "The user")->required();
  CLI::Option* given = app.add_option("password", password_arg, "The password (with -b)");
  const auto parsed = tinymq::config::RunCliParser(app, argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "tinymq-passwd: %s\n", parsed.error().c_str());
    return 2;
  }
  if (*parsed) {
    std::fputs((*parsed)->c_str(), stdout);  // --help
    return 0;
  }
  if (batch != (given->count() != 0) || (remove && (batch || create))) {
    std::fprintf(stderr,
                 "tinymq-passwd: usage: [-c] FILE USER | [-c] -b FILE USER PASSWORD | "
                 "-D FILE USER\n");
    return 2;
  }
  std::string error;
  std::string text;
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (create && exists) {
    std::fprintf(stderr, "tinymq-passwd: %s exists already; leave out -c to change it\n",
                 path.c_str());
    return 1;
  }
  if (!create) {
    std::optional<std::string> read = ReadFile(path, error);
    if (!read) {
      std::fprintf(stderr, "tinymq-passwd: %s%s\n", error.c_str(),
                   exists ? "" : "; use -c to create it");
      return 1;
    }
    text = std::move(*read);
  }
  std::string hash;
  if (!remove) {
    std::optional<std::string> password =
        batch ? std::optional<std::string>(password_arg) : Prompt("Password: ");
    if (!batch && password) {
      const std::optional<std::string> again = Prompt("Password again: ");
      if (!again || *again != *password) {
        std::fprintf(stderr, "tinymq-passwd: the passwords differ; nothing changed\n");
        return 1;
      }
    }
    if (!password) {
      std::fprintf(stderr, "tinymq-passwd: no password given; nothing changed\n");
      return 1;
    }
    auto hashed = tinymq::auth::HashPassword(*password, iterations);
    if (!hashed) {
      std::fprintf(stderr, "tinymq-passwd: %s\n", hashed.error().c_str());
      return 1;
    }
    hash = std::move(*hashed);
  }
  auto updated = tinymq::auth::WithUser(text, user, hash);
  if (!updated) {
    std::fprintf(stderr, "tinymq-passwd: %s: %s\n", path.c_str(), updated.error().c_str());
    return 1;
  }
  if (!WriteFile(path, *updated, error)) {
    std::fprintf(stderr, "tinymq-passwd: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
