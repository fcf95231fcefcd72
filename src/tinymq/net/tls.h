#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "tinymq/config/config.h"
#include "tinymq/net/socket_io.h"
#include "tinymq/util/result.h"

// TLS for listeners (OpenSSL 3). Only net/tls*.cc includes OpenSSL: its types are declared here
// by their C names, so that the rest of the code base compiles without OpenSSL's headers.
struct ssl_st;
struct ssl_ctx_st;

namespace tinymq::net {

class TlsSession;

// TlsContext: what one TLS listener serves — its certificate chain and key, the CAs a client
// certificate must chain to, whether one is asked for, the protocol versions and cipher lists —
// as an OpenSSL SSL_CTX built from a config::TlsConfig, and the sessions of its connections.
//
// Reload() builds a new SSL_CTX from the same files and swaps it in: sessions made afterwards use
// the new certificate; open ones keep the SSL_CTX they were made from (OpenSSL counts its
// references), so no connection notices. A failed reload keeps the old one.
//
// Hardening beyond OpenSSL's defaults: no compression (CRIME), no renegotiation, the server's
// cipher order, a session id context (resumption with client certificates), no password prompt
// for an encrypted key (refused instead). Session tickets and the session cache stay on.
//
// Threading: Thread-safe. Workers call NewSession() concurrently; Reload() may run meanwhile on
//            another thread (the main thread, on SIGHUP). The lock is held only to copy or swap
//            a pointer.
// Lifetime:  reads its files in Create() and Reload() only. Sessions do not refer to the
//            TlsContext and may outlive it.
// Errors:    Create() and Reload() return one line naming the key, the file and the cause, e.g.
//            "tls.cert server.pem: cannot read: no such file or directory",
//            "tls.key server.key: key does not match the certificate (tls.cert server.pem)",
//            "tls.ciphers: bad cipher list 'FOO': no cipher match". Never throws.
class TlsContext {
 public:
  static util::Result<std::unique_ptr<TlsContext>, std::string> Create(config::TlsConfig config);

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ~TlsContext();

  // Reads the files again and, when everything is valid, serves what they hold from now on.
  util::Result<void, std::string> Reload();

  // A server session on the connected, non-blocking socket `fd` (not owned; it must outlive the
  // session), with the certificates current now. Errors (OpenSSL out of memory) name the cause.
  util::Result<std::unique_ptr<TlsSession>, std::string> NewSession(int fd) const noexcept;

  const config::TlsConfig& config() const noexcept { return config_; }

  struct CtxFree {
    void operator()(ssl_ctx_st* ctx) const noexcept;
  };

 private:
  class Key {
    friend class TlsContext;
    explicit Key() = default;
  };

 public:
  // For Create() only (make_unique needs a public constructor; Key keeps it private in effect).
  TlsContext(Key, config::TlsConfig config, std::shared_ptr<ssl_ctx_st> ctx)
      : config_(std::move(config)), current_(std::move(ctx)) {}

 private:
  // Const after construction.
  const config::TlsConfig config_;

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::shared_ptr<ssl_ctx_st> current_;
};

enum class TlsStatus : std::uint8_t {
  kOk,         // done; `bytes` transferred (Read, Write)
  kWantRead,   // call again once the socket is readable
  kWantWrite,  // call again once the socket is writable
  kClosed,     // the peer ended the connection (close_notify, or EOF of the TCP stream)
  kError,      // the connection is unusable; error() says why
};

struct TlsResult {
  TlsStatus status = TlsStatus::kOk;
  std::size_t bytes = 0;
};

// TlsSession: the server side of one TLS connection over a non-blocking socket the caller owns
// and polls: the handshake, then decrypted reads and encrypted writes, each of which may ask to
// wait for the socket to become readable or writable (either way: a read may need to write, as
// TLS 1.3 key updates do, and a write to read).
//
// I/O goes through a BIO of our own over the socket (recv/send on the descriptor), not memory
// BIOs: OpenSSL reads the records straight from the socket and writes them straight to it, so no
// byte is copied between a memory BIO and the socket and no connection carries two more buffers.
// OpenSSL's own socket BIO is not used because it write()s, which raises SIGPIPE when the peer
// has gone; ours sends with MSG_NOSIGNAL and keeps EINTR inside.
//
// Writes are coalesced: Write() copies the caller's pieces (packet headers, shared payloads) into
// a staging buffer of one record (16 KiB) and encrypts it as one record with one send(), instead
// of one record and one system call per small piece. When the socket cannot take a record,
// OpenSSL requires the same bytes to be offered again: the session keeps them (pending_output())
// and sends them first on the next Write(), so the caller may drop them at once.
//
// Threading: Owned by one worker thread; not thread-safe. It may move to another thread (a
//            connection handed over to another worker), used by one thread at a time.
// Lifetime:  the socket must outlive the session, which never closes it. Keeps its SSL_CTX.
// Errors:    kError with error() text ("wrong version number", "certificate verify failed:
//            unable to get local issuer certificate", "connection reset by peer", ...).
class TlsSession {
 public:
  // The most plaintext one TLS record holds; Write() stages at most this much per call.
  static constexpr std::size_t kMaxRecord = 16384;

  class Key {
    friend class TlsContext;
    explicit Key() = default;
  };
  // For TlsContext::NewSession() only.
  TlsSession(Key, int fd) { socket_.fd = fd; }
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  ~TlsSession();

  // Runs the handshake as far as the socket allows: kOk once it is complete (then and only then
  // handshake_done()); kWantRead/kWantWrite; kClosed or kError when it failed.
  TlsResult Handshake() noexcept;
  bool handshake_done() const noexcept { return handshake_done_; }

  // Decrypts into `buffer` (at most one record's plaintext). kOk with bytes > 0; kWantRead (no
  // whole record yet), kWantWrite, kClosed or kError.
  // REQUIRES: handshake_done(); `buffer` is not empty.
  TlsResult Read(std::span<std::uint8_t> buffer) noexcept;
  // Plaintext of the current record that Read() has not returned yet. The socket may be empty
  // meanwhile (no readiness event comes for it): read until this is false.
  bool buffered_input() const noexcept;

  // Sends what pending_output() holds, then at most one record of `pieces` (in order), copied
  // through `staging`. kOk: `bytes` of `pieces` were sent (fewer than given when they fill more
  // than one record: call again for the rest). kWantWrite/kWantRead: `bytes` of `pieces` (maybe
  // 0) were taken into pending_output(), which goes first once the socket allows; the caller
  // drops them as sent. kError: nothing more can be sent.
  // REQUIRES: handshake_done(); staging.size() >= kMaxRecord.
  TlsResult Write(std::span<const ByteRange> pieces, std::span<std::uint8_t> staging) noexcept;
  // Bytes Write() took but the socket has not taken yet (see Write()).
  bool pending_output() const noexcept { return !pending_.empty(); }

  // Sends close_notify (once, without waiting for the peer's): call when everything is written
  // and the connection is about to end. Does nothing after a failure or before the handshake.
  void Close() noexcept;

  // The username the verified client certificate gives (config::CertUsername): the subject's
  // common name, or the whole subject in RFC 2253 form ("CN=dev1,O=Acme", UTF-8 kept as is).
  // Empty when there is no verified certificate, no or several common names, or the name is not
  // usable as an MQTT string (a NUL in it).
  std::string PeerName(config::CertUsername from) const;

  // Why the last call failed (kError, and kClosed during the handshake).
  const std::string& error() const noexcept { return error_; }

  // The BIO's view of the socket (tls.cc).
  struct Socket {
    int fd = -1;
    int error = 0;     // errno of the last failed send()/recv()
    bool eof = false;  // recv() returned 0
  };
  struct SslFree {
    void operator()(ssl_st* ssl) const noexcept;
  };

 private:
  friend class TlsContext;

  // The status of an SSL_* call that returned `rc` (<= 0), with error_ set for failures.
  TlsStatus Failed(int rc) noexcept;

  Socket socket_;  // the BIO points here: a session never moves (held by unique_ptr)
  std::unique_ptr<ssl_st, SslFree> ssl_;
  std::vector<std::uint8_t> pending_;  // see Write(); empty (no capacity) unless the socket is full
  bool handshake_done_ = false;
  bool failed_ = false;  // no close_notify after a fatal error (OpenSSL forbids it)
  std::string error_;
};

}  // namespace tinymq::net
