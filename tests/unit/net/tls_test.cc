#include "tinymq/net/tls.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/net/fd.h"

// TlsContext and TlsSession against an OpenSSL client in the same thread, over a socketpair: no
// network, no threads, no sleeps. The certificates are made here with the OpenSSL API.

namespace tinymq::net {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;

PkeyPtr NewKey() { return PkeyPtr(EVP_EC_gen("P-256")); }

// A certificate for `key` with subject CN=`cn` (and O=`org` when not empty), signed by `issuer`
// with `issuer_key` (self-signed when issuer is null).
X509Ptr NewCert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                const std::string& org = "") {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!org.empty()) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), key);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_basic_constraints,
                                            ca ? "critical,CA:TRUE" : "CA:FALSE");
  X509_add_ext(cert.get(), ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

std::string Pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string Pem(EVP_PKEY* key, const char* password = nullptr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (password != nullptr) {
    PEM_write_bio_PrivateKey(bio.get(), key, EVP_aes_256_cbc(), nullptr, 0, nullptr,
                             const_cast<char*>(password));
  } else {
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A CA, a server certificate it signed, and a client certificate it signed; files in a temporary
// directory removed at the end.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "tinymq-tls-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    ca_key_ = NewKey();
    ca_ = NewCert("Test CA", ca_key_.get(), nullptr, nullptr, true);
    server_key_ = NewKey();
    server_ = NewCert("server", server_key_.get(), ca_.get(), ca_key_.get(), false);
    client_key_ = NewKey();
    client_ = NewCert("dev1", client_key_.get(), ca_.get(), ca_key_.get(), false, "Acme");
    Write("ca.pem", Pem(ca_.get()));
    Write("server.pem", Pem(server_.get()));
    Write("server.key", Pem(server_key_.get()));
    Write("client.pem", Pem(client_.get()));
    Write("client.key", Pem(client_key_.get()));
    config_.cert = Path("server.pem");
    config_.key = Path("server.key");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(std::string_view name) const { return (dir_ / name).string(); }
  void Write(std::string_view name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
  }

  std::unique_ptr<TlsContext> Context() {
    auto ctx = TlsContext::Create(config_);
    EXPECT_TRUE(ctx) << ctx.error();
    return ctx ? std::move(*ctx) : nullptr;
  }
  std::string CreateError() {
    auto ctx = TlsContext::Create(config_);
    EXPECT_FALSE(ctx);
    return ctx ? std::string() : ctx.error();
  }

  std::filesystem::path dir_;
  PkeyPtr ca_key_, server_key_, client_key_;
  X509Ptr ca_, server_, client_;
  config::TlsConfig config_;
};

// One connection: the server's TlsSession and an OpenSSL client, over a socketpair.
struct Link {
  Fd server_fd;
  Fd client_fd;
  std::unique_ptr<TlsSession> server;
  SslCtxPtr client_ctx;
  SslPtr client;
  bool client_done = false;

  // Runs both handshakes until both are done or one fails; true when both succeeded.
  bool Handshake(TlsResult* server_result = nullptr) {
    TlsResult s;
    for (int i = 0; i < 100; ++i) {
      if (!server->handshake_done()) {
        s = server->Handshake();
        if (s.status == TlsStatus::kError || s.status == TlsStatus::kClosed) {
          break;
        }
      }
      if (!client_done) {
        const int rc = SSL_do_handshake(client.get());
        if (rc == 1) {
          client_done = true;
        } else {
          const int e = SSL_get_error(client.get(), rc);
          if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            // Let the server see the client's alert.
            s = server->Handshake();
            break;
          }
        }
      }
      if (client_done && server->handshake_done()) {
        // TLS 1.3: the server's session tickets come after the handshake; let the client read
        // them so that they do not count as application data.
        return true;
      }
    }
    if (server_result != nullptr) {
      *server_result = s;
    }
    return false;
  }

  // What the client reads until the socket is empty.
  std::string ClientReadAll() {
    std::string out;
    std::array<char, 4096> buf;
    for (;;) {
      std::size_t n = 0;
      if (SSL_read_ex(client.get(), buf.data(), buf.size(), &n) != 1) {
        ERR_clear_error();
        return out;
      }
      out.append(buf.data(), n);
    }
  }

  // The server reads until it would block; returns the text and the last status.
  std::pair<std::string, TlsStatus> ServerReadAll() {
    std::string out;
    std::array<std::uint8_t, 4096> buf;
    for (;;) {
      const TlsResult r = server->Read(buf);
      if (r.status != TlsStatus::kOk) {
        return {out, r.status};
      }
      out.append(reinterpret_cast<const char*>(buf.data()), r.bytes);
    }
  }
};

// `configure` sets up the client's context (versions, certificate).
template <typename Configure>
Link Connect(TlsContext& ctx, Configure configure) {
  std::array<int, 2> fds{};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()), 0);
  Link link;
  link.server_fd = Fd(fds[0]);
  link.client_fd = Fd(fds[1]);
  auto session = ctx.NewSession(link.server_fd.get());
  EXPECT_TRUE(session) << session.error();
  link.server = std::move(*session);
  link.client_ctx.reset(SSL_CTX_new(TLS_client_method()));
  configure(link.client_ctx.get());
  link.client.reset(SSL_new(link.client_ctx.get()));
  SSL_set_fd(link.client.get(), link.client_fd.get());
  SSL_set_connect_state(link.client.get());
  return link;
}

Link Connect(TlsContext& ctx) {
  return Connect(ctx, [](SSL_CTX*) {});
}

std::string ServerCertCn(SSL* client) {
  X509* cert = SSL_get0_peer_certificate(client);
  if (cert == nullptr) {
    return "";
  }
  std::array<char, 256> cn{};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn.data(),
                            static_cast<int>(cn.size()));
  return cn.data();
}

TEST_F(TlsTest, GoodConfigHandshakesAndMovesBytesBothWays) {
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake());
  EXPECT_EQ(ServerCertCn(link.client.get()), "server");

  ASSERT_EQ(SSL_write(link.client.get(), "hello", 5), 5);
  auto [text, status] = link.ServerReadAll();
  EXPECT_EQ(text, "hello");
  EXPECT_EQ(status, TlsStatus::kWantRead);
  EXPECT_FALSE(link.server->buffered_input());

  // Many small pieces go out as one record.
  std::array<std::uint8_t, TlsSession::kMaxRecord> staging;
  const std::string a = "abc", b = "defgh", c(1000, 'x');
  const std::array<ByteRange, 3> pieces = {
      ByteRange{a.data(), a.size()}, ByteRange{b.data(), b.size()}, ByteRange{c.data(), c.size()}};
  const TlsResult w = link.server->Write(pieces, staging);
  EXPECT_EQ(w.status, TlsStatus::kOk);
  EXPECT_EQ(w.bytes, a.size() + b.size() + c.size());
  EXPECT_FALSE(link.server->pending_output());
  std::array<char, 4096> buf;
  std::size_t n = 0;
  ASSERT_EQ(SSL_read_ex(link.client.get(), buf.data(), buf.size(), &n), 1);
  EXPECT_EQ(std::string(buf.data(), n), a + b + c);  // one SSL_read: one record
}

TEST_F(TlsTest, WriteTakesAtMostOneRecord) {
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake());
  std::array<std::uint8_t, TlsSession::kMaxRecord> staging;
  const std::string big(40000, 'y');
  const std::array<ByteRange, 1> pieces = {ByteRange{big.data(), big.size()}};
  const TlsResult w = link.server->Write(pieces, staging);
  EXPECT_EQ(w.status, TlsStatus::kOk);
  EXPECT_EQ(w.bytes, TlsSession::kMaxRecord);
}

TEST_F(TlsTest, FullSocketKeepsTheRecordAndSendsItFirst) {
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake());
  (void)link.ClientReadAll();  // session tickets
  std::array<std::uint8_t, TlsSession::kMaxRecord> staging;
  std::string sent;
  std::size_t accepted = 0;
  TlsResult w;
  for (int i = 0; i < 10000; ++i) {
    const std::string chunk(1000, static_cast<char>('a' + i % 26));
    sent += chunk;
    const std::array<ByteRange, 1> pieces = {ByteRange{chunk.data(), chunk.size()}};
    w = link.server->Write(pieces, staging);
    accepted += w.bytes;
    if (w.status != TlsStatus::kOk) {
      break;
    }
  }
  ASSERT_EQ(w.status, TlsStatus::kWantWrite);
  EXPECT_TRUE(link.server->pending_output());
  EXPECT_EQ(accepted, sent.size());  // the blocked record was taken: the caller may drop it
  std::string received;
  for (int i = 0; i < 1000 && (link.server->pending_output() || received.size() < sent.size());
       ++i) {
    received += link.ClientReadAll();
    (void)link.server->Write({}, staging);
  }
  received += link.ClientReadAll();
  EXPECT_FALSE(link.server->pending_output());
  EXPECT_EQ(received, sent);
}

TEST_F(TlsTest, CloseSendsCloseNotify) {
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake());
  link.server->Close();
  std::array<char, 64> buf;
  std::size_t n = 0;
  EXPECT_EQ(SSL_read_ex(link.client.get(), buf.data(), buf.size(), &n), 0);
  EXPECT_EQ(SSL_get_error(link.client.get(), 0), SSL_ERROR_ZERO_RETURN);
  ERR_clear_error();
}

TEST_F(TlsTest, PeerEofWithoutCloseNotifyIsClosed) {
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake());
  // The session tickets first: closing with unread input would reset the connection instead.
  (void)link.ClientReadAll();
  link.client.reset();
  link.client_fd.Reset();
  EXPECT_EQ(link.ServerReadAll().second, TlsStatus::kClosed);
}

TEST_F(TlsTest, PlainBytesFailTheHandshake) {
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  using namespace std::string_literals;
  const std::string connect = "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"s;  // a CONNECT
  ASSERT_EQ(::write(link.client_fd.get(), connect.data(), connect.size()),
            static_cast<ssize_t>(connect.size()));
  const TlsResult r = link.server->Handshake();
  EXPECT_EQ(r.status, TlsStatus::kError);
  EXPECT_FALSE(link.server->error().empty());
  link.server->Close();  // after a failure: nothing, and no crash
}

TEST_F(TlsTest, MissingCertFileNamesTheFileAndTheCause) {
  config_.cert = Path("nope.pem");
  EXPECT_EQ(CreateError(),
            "tls.cert " + Path("nope.pem") + ": cannot read: no such file or directory");
}

TEST_F(TlsTest, MissingKeyFileNamesTheFile) {
  config_.key = Path("nope.key");
  EXPECT_EQ(CreateError(),
            "tls.key " + Path("nope.key") + ": cannot read: no such file or directory");
}

TEST_F(TlsTest, MissingCaFileNamesTheFile) {
  config_.ca = Path("nope-ca.pem");
  config_.client_certs = config::ClientCerts::kRequired;
  EXPECT_EQ(CreateError(),
            "tls.ca " + Path("nope-ca.pem") + ": cannot read: no such file or directory");
}

TEST_F(TlsTest, NotPemIsRefused) {
  Write("junk.pem", "this is not a certificate\n");
  config_.cert = Path("junk.pem");
  EXPECT_TRUE(CreateError().starts_with("tls.cert " + Path("junk.pem") + ": no PEM certificate"));
}

TEST_F(TlsTest, MismatchedKeyIsRefused) {
  config_.key = Path("client.key");
  EXPECT_EQ(CreateError(), "tls.key " + Path("client.key") +
                               ": key does not match the certificate (tls.cert " +
                               Path("server.pem") + ")");
}

TEST_F(TlsTest, EncryptedKeyIsRefusedWithoutAPrompt) {
  Write("encrypted.key", Pem(server_key_.get(), "secret"));
  config_.key = Path("encrypted.key");
  EXPECT_NE(CreateError().find("the key is encrypted"), std::string::npos);
}

TEST_F(TlsTest, BadCipherListIsRefused) {
  config_.ciphers = "NO-SUCH-CIPHER";
  const std::string error = CreateError();
  EXPECT_TRUE(error.starts_with("tls.ciphers: bad cipher list 'NO-SUCH-CIPHER': ")) << error;
}

TEST_F(TlsTest, BadCipherSuitesAreRefused) {
  config_.ciphersuites = "TLS_NO_SUCH_SUITE";
  const std::string error = CreateError();
  EXPECT_TRUE(error.starts_with("tls.ciphersuites: bad cipher suites 'TLS_NO_SUCH_SUITE': "))
      << error;
}

TEST_F(TlsTest, GoodCipherSettingsAreAccepted) {
  config_.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
  config_.ciphersuites = "TLS_AES_256_GCM_SHA384";
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake());
  EXPECT_STREQ(SSL_get_cipher_name(link.client.get()), "TLS_AES_256_GCM_SHA384");
}

TEST_F(TlsTest, Tls13OnlyRefusesATls12Client) {
  config_.min_version = config::TlsVersion::k1_3;
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx, [](SSL_CTX* c) { SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION); });
  TlsResult r;
  EXPECT_FALSE(link.Handshake(&r));
  EXPECT_EQ(r.status, TlsStatus::kError);
  EXPECT_NE(link.server->error().find("unsupported protocol"), std::string::npos)
      << link.server->error();
}

TEST_F(TlsTest, Tls12OnlyNegotiatesTls12) {
  config_.max_version = config::TlsVersion::k1_2;
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake());
  EXPECT_EQ(SSL_version(link.client.get()), TLS1_2_VERSION);

  Link modern = Connect(*ctx, [](SSL_CTX* c) { SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION); });
  EXPECT_FALSE(modern.Handshake());
}

TEST_F(TlsTest, RequiredClientCertificateGivesTheUsername) {
  config_.ca = Path("ca.pem");
  config_.client_certs = config::ClientCerts::kRequired;
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  X509* cert = client_.get();
  EVP_PKEY* key = client_key_.get();
  Link link = Connect(*ctx, [&](SSL_CTX* c) {
    SSL_CTX_use_certificate(c, cert);
    SSL_CTX_use_PrivateKey(c, key);
  });
  ASSERT_TRUE(link.Handshake()) << link.server->error();
  ASSERT_EQ(SSL_write(link.client.get(), "x", 1), 1);  // TLS 1.3: the server verifies late
  EXPECT_EQ(link.ServerReadAll().first, "x");
  EXPECT_EQ(link.server->PeerName(config::CertUsername::kCommonName), "dev1");
  EXPECT_EQ(link.server->PeerName(config::CertUsername::kSubject), "CN=dev1,O=Acme");
  EXPECT_EQ(link.server->PeerName(config::CertUsername::kNone), "");
}

TEST_F(TlsTest, RequiredClientCertificateRefusesNoCertificate) {
  config_.ca = Path("ca.pem");
  config_.client_certs = config::ClientCerts::kRequired;
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  TlsResult r;
  EXPECT_FALSE(link.Handshake(&r));
  EXPECT_EQ(r.status, TlsStatus::kError);
  EXPECT_NE(link.server->error().find("certificate"), std::string::npos) << link.server->error();
}

TEST_F(TlsTest, RequiredClientCertificateRefusesAnotherCa) {
  config_.ca = Path("ca.pem");
  config_.client_certs = config::ClientCerts::kRequired;
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  PkeyPtr other_ca_key = NewKey();
  X509Ptr other_ca = NewCert("Other CA", other_ca_key.get(), nullptr, nullptr, true);
  PkeyPtr key = NewKey();
  X509Ptr cert = NewCert("mallory", key.get(), other_ca.get(), other_ca_key.get(), false);
  Link link = Connect(*ctx, [&](SSL_CTX* c) {
    SSL_CTX_use_certificate(c, cert.get());
    SSL_CTX_use_PrivateKey(c, key.get());
  });
  TlsResult r;
  EXPECT_FALSE(link.Handshake(&r));
  EXPECT_EQ(r.status, TlsStatus::kError);
  EXPECT_NE(link.server->error().find("certificate verify failed"), std::string::npos)
      << link.server->error();
}

TEST_F(TlsTest, OptionalClientCertificateLetsInAClientWithout) {
  config_.ca = Path("ca.pem");
  config_.client_certs = config::ClientCerts::kOptional;
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link link = Connect(*ctx);
  ASSERT_TRUE(link.Handshake()) << link.server->error();
  EXPECT_EQ(link.server->PeerName(config::CertUsername::kCommonName), "");
}

TEST_F(TlsTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
  auto ctx = Context();
  ASSERT_NE(ctx, nullptr);
  Link before = Connect(*ctx);
  ASSERT_TRUE(before.Handshake());

  PkeyPtr key = NewKey();
  X509Ptr cert = NewCert("server-2", key.get(), ca_.get(), ca_key_.get(), false);
  Write("server.pem", Pem(cert.get()));
  Write("server.key", Pem(key.get()));
  ASSERT_TRUE(ctx->Reload());

  Link after = Connect(*ctx);
  ASSERT_TRUE(after.Handshake());
  EXPECT_EQ(ServerCertCn(after.client.get()), "server-2");
  // The connection from before goes on.
  ASSERT_EQ(SSL_write(before.client.get(), "still", 5), 5);
  EXPECT_EQ(before.ServerReadAll().first, "still");

  // A reload that fails (the key is not the certificate's) keeps what was served.
  Write("server.key", Pem(server_key_.get()));
  auto failed = ctx->Reload();
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().find("key does not match the certificate"), std::string::npos);
  Link third = Connect(*ctx);
  ASSERT_TRUE(third.Handshake());
  EXPECT_EQ(ServerCertCn(third.client.get()), "server-2");
}

}  // namespace
}  // namespace tinymq::net
