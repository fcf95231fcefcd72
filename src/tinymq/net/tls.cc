#include "tinymq/net/tls.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "tinymq/net/errno_text.h"
#include "tinymq/net/fd.h"

namespace tinymq::net {

namespace {

// Larger files are not certificates or keys (Debian's whole CA bundle is about 200 KiB).
constexpr std::size_t kMaxPemFile = std::size_t{4} << 20;

// Resumed sessions are tied to this context id; OpenSSL refuses to resume a session whose client
// certificate was verified without one.
constexpr std::array<unsigned char, 6> kSessionIdContext = {'t', 'i', 'n', 'y', 'm', 'q'};

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
struct X509InfosFree {
  void operator()(STACK_OF(X509_INFO) * infos) const noexcept {
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
  }
};
using X509InfosPtr = std::unique_ptr<STACK_OF(X509_INFO), X509InfosFree>;

// OpenSSL's reason for the latest error of this thread ("no cipher match"); clears the queue.
std::string OpenSslReason() {
  const unsigned long last = ERR_peek_last_error();
  std::string text;
  if (last == 0) {
    text = "unknown OpenSSL error";
  } else if (const char* reason = ERR_reason_error_string(last); reason != nullptr) {
    text = reason;
  } else {
    std::array<char, 256> buffer{};
    ERR_error_string_n(last, buffer.data(), buffer.size());
    text = buffer.data();
  }
  ERR_clear_error();
  return text;
}

// An encrypted key is refused: OpenSSL's default would prompt for its password on the terminal.
int NoPassword(char* /*buffer*/, int /*size*/, int /*writing*/, void* /*user*/) { return -1; }

// The whole of the file `path`, or "cannot read: <why>".
util::Result<std::string, std::string> ReadFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return util::Unexpected("cannot read: " + ErrnoText(errno));
  }
  std::string content;
  std::array<char, 16384> buffer;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return util::Unexpected("cannot read: " + ErrnoText(errno));
    }
    if (n == 0) {
      return content;
    }
    content.append(buffer.data(), static_cast<std::size_t>(n));
    if (content.size() > kMaxPemFile) {
      return util::Unexpected("larger than " + std::to_string(kMaxPemFile >> 20) +
                              " MiB: not a PEM file");
    }
  }
}

// A read-only memory BIO over `text`, which must outlive it.
BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// True when the error queue ends with "no more PEM blocks" (the normal end of a file), which is
// then cleared; other errors stay.
bool AtPemEnd() {
  const unsigned long last = ERR_peek_last_error();
  if (last == 0 ||
      (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    ERR_clear_error();
    return true;
  }
  return false;
}

// Loads the certificate chain of tls.cert (the server's own first, then its intermediates) into
// `ctx`; returns the server's certificate.
util::Result<X509Ptr, std::string> UseCertificateChain(SSL_CTX* ctx, const std::string& path) {
  const std::string where = "tls.cert " + path;
  util::Result<std::string, std::string> pem = ReadFile(path);
  if (!pem) {
    return util::Unexpected(where + ": " + pem.error());
  }
  BioPtr bio = MemoryBio(*pem);
  if (!bio) {
    return util::Unexpected(where + ": " + OpenSslReason());
  }
  X509Ptr leaf(PEM_read_bio_X509_AUX(bio.get(), nullptr, NoPassword, nullptr));
  if (!leaf) {
    return util::Unexpected(where + ": no PEM certificate in it (" + OpenSslReason() + ")");
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return util::Unexpected(where + ": " + OpenSslReason());  // e.g. "ee key too small"
  }
  for (;;) {
    X509Ptr next(PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
    if (!next) {
      break;
    }
    if (SSL_CTX_add0_chain_cert(ctx, next.get()) != 1) {
      return util::Unexpected(where + ": " + OpenSslReason());
    }
    (void)next.release();  // add0: the context owns it now
  }
  if (!AtPemEnd()) {
    return util::Unexpected(where + ": " + OpenSslReason());  // a damaged block
  }
  return leaf;
}

// Loads the private key of tls.key into `ctx` after checking that it belongs to `cert`.
util::Result<void, std::string> UsePrivateKey(SSL_CTX* ctx, const std::string& path, X509* cert,
                                              const std::string& cert_path) {
  const std::string where = "tls.key " + path;
  util::Result<std::string, std::string> pem = ReadFile(path);
  if (!pem) {
    return util::Unexpected(where + ": " + pem.error());
  }
  BioPtr bio = MemoryBio(*pem);
  if (!bio) {
    return util::Unexpected(where + ": " + OpenSslReason());
  }
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  if (!key) {
    if (pem->find("ENCRYPTED") != std::string::npos) {
      ERR_clear_error();
      return util::Unexpected(where +
                              ": the key is encrypted; tinymq reads unencrypted keys only "
                              "(protect the file by its permissions)");
    }
    return util::Unexpected(where + ": no PEM private key in it (" + OpenSslReason() + ")");
  }
  if (X509_check_private_key(cert, key.get()) != 1) {
    ERR_clear_error();
    return util::Unexpected(where + ": key does not match the certificate (tls.cert " + cert_path +
                            ")");
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return util::Unexpected(where + ": " + OpenSslReason());
  }
  return {};
}

// Trusts the CA certificates of tls.ca for client certificates, and names them in the
// certificate request (so that a client with several certificates can pick the right one).
util::Result<void, std::string> UseClientCas(SSL_CTX* ctx, const std::string& path) {
  const std::string where = "tls.ca " + path;
  util::Result<std::string, std::string> pem = ReadFile(path);
  if (!pem) {
    return util::Unexpected(where + ": " + pem.error());
  }
  BioPtr bio = MemoryBio(*pem);
  if (!bio) {
    return util::Unexpected(where + ": " + OpenSslReason());
  }
  X509InfosPtr infos(PEM_X509_INFO_read_bio(bio.get(), nullptr, NoPassword, nullptr));
  if (!infos) {
    return util::Unexpected(where + ": " + OpenSslReason());
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int certificates = 0;
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos.get(), i);
    if (info == nullptr || info->x509 == nullptr) {
      continue;  // a CRL or a key: not used
    }
    if (X509_STORE_add_cert(store, info->x509) != 1 ||
        SSL_CTX_add_client_CA(ctx, info->x509) != 1) {
      return util::Unexpected(where + ": " + OpenSslReason());
    }
    ++certificates;
  }
  if (certificates == 0) {
    ERR_clear_error();
    return util::Unexpected(where + ": no PEM certificate in it");
  }
  return {};
}

int ToOpenSsl(config::TlsVersion version) {
  return version == config::TlsVersion::k1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

// A new SSL_CTX from `c`, its files read now.
util::Result<std::shared_ptr<SSL_CTX>, std::string> Build(const config::TlsConfig& c) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (raw == nullptr) {
    return util::Unexpected("SSL_CTX_new: " + OpenSslReason());
  }
  std::shared_ptr<SSL_CTX> ctx(raw, TlsContext::CtxFree{});
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE |
                                     // MQTT frames its packets, so a truncation attack cannot
                                     // shorten one unnoticed, and many clients close without
                                     // close_notify: their EOF is an ordinary end of stream.
                                     SSL_OP_IGNORE_UNEXPECTED_EOF);
  // ACCEPT_MOVING_WRITE_BUFFER: a record the socket could not take is offered again from the
  // session's own copy (TlsSession::Write). RELEASE_BUFFERS: an idle connection holds no read or
  // write buffer (about 34 KiB each otherwise), which matters with 10^5 mostly idle clients.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext.data(),
                                     static_cast<unsigned int>(kSessionIdContext.size())) != 1 ||
      SSL_CTX_set_min_proto_version(ctx.get(), ToOpenSsl(c.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), ToOpenSsl(c.max_version)) != 1 ||
      SSL_CTX_set_dh_auto(ctx.get(), 1) != 1) {
    return util::Unexpected("tls: " + OpenSslReason());
  }
  if (!c.ciphers.empty() && SSL_CTX_set_cipher_list(ctx.get(), c.ciphers.c_str()) != 1) {
    return util::Unexpected("tls.ciphers: bad cipher list '" + c.ciphers + "': " + OpenSslReason());
  }
  if (!c.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx.get(), c.ciphersuites.c_str()) != 1) {
    return util::Unexpected("tls.ciphersuites: bad cipher suites '" + c.ciphersuites +
                            "': " + OpenSslReason());
  }
  util::Result<X509Ptr, std::string> cert = UseCertificateChain(ctx.get(), c.cert);
  if (!cert) {
    return util::Unexpected(cert.error());
  }
  if (auto key = UsePrivateKey(ctx.get(), c.key, cert->get(), c.cert); !key) {
    return util::Unexpected(key.error());
  }
  if (!c.ca.empty()) {
    if (auto cas = UseClientCas(ctx.get(), c.ca); !cas) {
      return util::Unexpected(cas.error());
    }
  }
  int verify = SSL_VERIFY_NONE;
  switch (c.client_certs) {
    case config::ClientCerts::kNone: break;
    case config::ClientCerts::kOptional: verify = SSL_VERIFY_PEER; break;
    case config::ClientCerts::kRequired:
      verify = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      break;
  }
  SSL_CTX_set_verify(ctx.get(), verify, nullptr);
  return ctx;
}

// The BIO between OpenSSL and a socket: recv() and send() on the descriptor in the
// TlsSession::Socket that is its data. See tls.h for why not OpenSSL's own socket BIO.
int SocketWrite(BIO* bio, const char* data, int size) {
  auto* socket = static_cast<TlsSession::Socket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const IoResult r = Send(socket->fd, std::span(reinterpret_cast<const std::uint8_t*>(data),
                                                static_cast<std::size_t>(size)));
  switch (r.status) {
    case IoStatus::kOk: return static_cast<int>(r.bytes);
    case IoStatus::kWouldBlock: BIO_set_retry_write(bio); return -1;
    case IoStatus::kClosed:
    case IoStatus::kError: break;
  }
  socket->error = r.error;
  return -1;
}

int SocketRead(BIO* bio, char* data, int size) {
  auto* socket = static_cast<TlsSession::Socket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const IoResult r = Receive(
      socket->fd, std::span(reinterpret_cast<std::uint8_t*>(data), static_cast<std::size_t>(size)));
  switch (r.status) {
    case IoStatus::kOk: return static_cast<int>(r.bytes);
    case IoStatus::kWouldBlock: BIO_set_retry_read(bio); return -1;
    case IoStatus::kClosed: socket->eof = true; return 0;
    case IoStatus::kError: break;
  }
  socket->error = r.error;
  return -1;
}

long SocketControl(BIO* bio, int command, long /*number*/, void* /*pointer*/) {
  switch (command) {
    case BIO_CTRL_FLUSH: return 1;  // nothing is buffered here
    case BIO_CTRL_EOF:              // OpenSSL tells an EOF from an error by this
      return static_cast<TlsSession::Socket*>(BIO_get_data(bio))->eof ? 1 : 0;
    default: return 0;
  }
}

const BIO_METHOD* SocketBioMethod() {
  static const std::unique_ptr<BIO_METHOD, Deleter<BIO_meth_free>> method = [] {
    std::unique_ptr<BIO_METHOD, Deleter<BIO_meth_free>> m(
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tinymq socket"));
    if (m && (BIO_meth_set_write(m.get(), SocketWrite) != 1 ||
              BIO_meth_set_read(m.get(), SocketRead) != 1 ||
              BIO_meth_set_ctrl(m.get(), SocketControl) != 1)) {
      m.reset();
    }
    return m;
  }();
  return method.get();
}

}  // namespace

void TlsContext::CtxFree::operator()(ssl_ctx_st* ctx) const noexcept { SSL_CTX_free(ctx); }
void TlsSession::SslFree::operator()(ssl_st* ssl) const noexcept { SSL_free(ssl); }

util::Result<std::unique_ptr<TlsContext>, std::string> TlsContext::Create(
    config::TlsConfig config) {
  util::Result<std::shared_ptr<SSL_CTX>, std::string> ctx = Build(config);
  if (!ctx) {
    return util::Unexpected(ctx.error());
  }
  return std::make_unique<TlsContext>(Key(), std::move(config), std::move(*ctx));
}

TlsContext::~TlsContext() = default;

util::Result<void, std::string> TlsContext::Reload() {
  util::Result<std::shared_ptr<SSL_CTX>, std::string> ctx = Build(config_);
  if (!ctx) {
    return util::Unexpected(ctx.error());
  }
  std::shared_ptr<SSL_CTX> old;
  {
    std::lock_guard lock(mu_);
    old = std::exchange(current_, std::move(*ctx));
  }
  return {};  // the old context goes here, outside the lock, unless sessions still hold it
}

util::Result<std::unique_ptr<TlsSession>, std::string> TlsContext::NewSession(
    int fd) const noexcept {
  std::shared_ptr<SSL_CTX> ctx;
  {
    std::lock_guard lock(mu_);
    ctx = current_;
  }
  ERR_clear_error();
  auto session = std::make_unique<TlsSession>(TlsSession::Key(), fd);
  session->ssl_.reset(SSL_new(ctx.get()));  // takes its own reference to ctx
  BIO* bio = session->ssl_ ? BIO_new(SocketBioMethod()) : nullptr;
  if (bio == nullptr) {
    return util::Unexpected("cannot start a TLS session: " + OpenSslReason());
  }
  BIO_set_data(bio, &session->socket_);
  BIO_set_init(bio, 1);
  SSL_set_bio(session->ssl_.get(), bio, bio);  // the session owns the BIO now
  SSL_set_accept_state(session->ssl_.get());
  return session;
}

TlsSession::~TlsSession() = default;

TlsStatus TlsSession::Failed(int rc) noexcept {
  switch (SSL_get_error(ssl_.get(), rc)) {
    case SSL_ERROR_WANT_READ: return TlsStatus::kWantRead;
    case SSL_ERROR_WANT_WRITE: return TlsStatus::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or an EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
      error_ = "closed by peer";
      return TlsStatus::kClosed;
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      if (socket_.error != 0) {
        ERR_clear_error();
        error_ = ErrnoText(socket_.error);
        return TlsStatus::kError;
      }
      if (ERR_peek_error() == 0) {  // an EOF OpenSSL did not expect
        error_ = "closed by peer";
        return TlsStatus::kClosed;
      }
      error_ = OpenSslReason();
      return TlsStatus::kError;
    default: break;
  }
  failed_ = true;
  error_ = OpenSslReason();
  if (const long verify = SSL_get_verify_result(ssl_.get()); verify != X509_V_OK) {
    error_ += ": ";
    error_ += X509_verify_cert_error_string(verify);
  }
  return TlsStatus::kError;
}

TlsResult TlsSession::Handshake() noexcept {
  if (handshake_done_) {
    return {};
  }
  ERR_clear_error();
  socket_.error = 0;
  const int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    handshake_done_ = true;
    return {};
  }
  return {Failed(rc), 0};
}

TlsResult TlsSession::Read(std::span<std::uint8_t> buffer) noexcept {
  ERR_clear_error();
  socket_.error = 0;
  std::size_t n = 0;
  const int rc = SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &n);
  if (rc == 1) {
    return {TlsStatus::kOk, n};
  }
  return {Failed(rc), 0};
}

bool TlsSession::buffered_input() const noexcept { return SSL_pending(ssl_.get()) > 0; }

TlsResult TlsSession::Write(std::span<const ByteRange> pieces,
                            std::span<std::uint8_t> staging) noexcept {
  while (!pending_.empty()) {
    ERR_clear_error();
    socket_.error = 0;
    std::size_t n = 0;
    const int rc = SSL_write_ex(ssl_.get(), pending_.data(), pending_.size(), &n);
    if (rc != 1) {
      return {Failed(rc), 0};
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
    if (pending_.empty()) {
      std::vector<std::uint8_t>().swap(pending_);  // its memory too: the socket drains again
    }
  }
  const std::size_t room = std::min(staging.size(), kMaxRecord);
  std::size_t staged = 0;
  for (const ByteRange& piece : pieces) {
    const std::size_t take = std::min(piece.size, room - staged);
    std::memcpy(staging.data() + staged, piece.data, take);
    staged += take;
    if (staged == room) {
      break;
    }
  }
  if (staged == 0) {
    return {};
  }
  ERR_clear_error();
  socket_.error = 0;
  std::size_t n = 0;
  const int rc = SSL_write_ex(ssl_.get(), staging.data(), staged, &n);
  if (rc == 1) {
    return {TlsStatus::kOk, n};  // all of it: partial writes are not enabled
  }
  const TlsStatus status = Failed(rc);
  if (status == TlsStatus::kWantWrite || status == TlsStatus::kWantRead) {
    // OpenSSL may have encrypted (and partly sent) the record: it must get the same bytes again.
    pending_.assign(staging.data(), staging.data() + staged);
    return {status, staged};
  }
  return {status == TlsStatus::kClosed ? TlsStatus::kError : status, 0};
}

void TlsSession::Close() noexcept {
  if (!handshake_done_ || failed_ || !pending_.empty() ||
      (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) != 0) {
    return;
  }
  ERR_clear_error();
  socket_.error = 0;
  // Sends close_notify if the socket takes it now; the peer's is not awaited (the connection is
  // being closed), so the result does not matter.
  (void)SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

std::string TlsSession::PeerName(config::CertUsername from) const {
  if (from == config::CertUsername::kNone) {
    return {};
  }
  X509* cert = SSL_get0_peer_certificate(ssl_.get());
  if (cert == nullptr || SSL_get_verify_result(ssl_.get()) != X509_V_OK) {
    return {};
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  std::string name;
  if (from == config::CertUsername::kCommonName) {
    const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0) {
      return {};  // none, or several: which one would be the user is a guess
    }
    unsigned char* utf8 = nullptr;
    const int size =
        ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
    if (size < 0 || utf8 == nullptr) {
      ERR_clear_error();
      return {};
    }
    name.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(size));
    OPENSSL_free(utf8);
  } else {
    BioPtr bio(BIO_new(BIO_s_mem()));
    // RFC 2253 escaping, but UTF-8 kept as UTF-8 (not \XX escapes): a readable username.
    if (!bio ||
        X509_NAME_print_ex(bio.get(), subject, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
      ERR_clear_error();
      return {};
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    if (size > 0 && data != nullptr) {
      name.assign(data, static_cast<std::size_t>(size));
    }
  }
  if (name.find('\0') != std::string::npos) {
    return {};
  }
  return name;
}

}  // namespace tinymq::net
