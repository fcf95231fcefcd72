// tinymq entry point. Until the broker lands (issue #3) it only reports its version and what the
// codec supports, so that `make run` has something to start.

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--version") != 0 && std::strcmp(argv[1], "--help") != 0) {
    std::fprintf(stderr, "tinymq: unknown option '%s' (try --help)\n", argv[1]);
    return 2;
  }
  if (argc > 1 && std::strcmp(argv[1], "--help") == 0) {
    std::printf("usage: tinymq [--version] [--help]\n");
    return 0;
  }
  std::printf("tinymq %s (MQTT 3.1, 3.1.1, 5.0 codec; broker not yet implemented)\n",
              TINYMQ_VERSION);
  return 0;
}
