// base/tls_credentials.h: every bad --tls-* file is one INVALID_ARGUMENT naming the flag, found
// when the program starts rather than at the first handshake.
#include "base/tls_credentials.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_certificates.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;

class TlsCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::TestCertificates> certs =
        testing::MakeTestCertificates(dir_.File("tls"));
    ASSERT_OK(certs);
    certs_ = *certs;
  }
  testing::TempDir dir_;
  testing::TestCertificates certs_;
};

TEST_F(TlsCredentialsTest, ServerFilesLoadAndMakeSslCredentials) {
  absl::StatusOr<TlsServerPem> pem =
      LoadTlsServerFiles(certs_.server_cert, certs_.server_key, certs_.ca);
  ASSERT_OK(pem);
  EXPECT_TRUE(pem->enabled());
  EXPECT_THAT(pem->cert_chain, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(pem->private_key, HasSubstr("PRIVATE KEY"));
  EXPECT_THAT(pem->client_ca, HasSubstr("BEGIN CERTIFICATE"));
  absl::StatusOr<TlsServerPem> none = LoadTlsServerFiles("", "", "");
  ASSERT_OK(none);
  EXPECT_FALSE(none->enabled());
}

TEST_F(TlsCredentialsTest, BadServerFilesNameTheFlag) {
  EXPECT_THAT(LoadTlsServerFiles(dir_.File("missing.pem"), certs_.server_key, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert: cannot read")));
  EXPECT_THAT(
      LoadTlsServerFiles(certs_.server_key, certs_.server_key, ""),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("--tls-cert: " + certs_.server_key + " holds no PEM certificate")));
  EXPECT_THAT(LoadTlsServerFiles(certs_.server_cert, certs_.server_cert, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-key: ")));
  EXPECT_THAT(LoadTlsServerFiles(certs_.server_cert, certs_.client_key, ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--tls-key: " + certs_.client_key +
                                 " does not match the certificate in --tls-cert")));
  EXPECT_THAT(LoadTlsServerFiles(certs_.server_cert, certs_.server_key, dir_.File("nope")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-client-ca: ")));
}

TEST_F(TlsCredentialsTest, ClientFilesComeAsASet) {
  absl::StatusOr<TlsClientPem> with_cert =
      LoadTlsClientFiles(certs_.ca, certs_.client_cert, certs_.client_key);
  ASSERT_OK(with_cert);
  EXPECT_TRUE(with_cert->enabled());
  EXPECT_FALSE(with_cert->private_key.empty());
  absl::StatusOr<TlsClientPem> none = LoadTlsClientFiles("", "", "");
  ASSERT_OK(none);
  EXPECT_FALSE(none->enabled());

  EXPECT_THAT(LoadTlsClientFiles(certs_.ca, certs_.client_cert, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert and --tls-key")));
  EXPECT_THAT(
      LoadTlsClientFiles("", certs_.client_cert, certs_.client_key),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert: needs --tls-ca")));
  EXPECT_THAT(LoadTlsClientFiles(certs_.client_key, "", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-ca: ")));
  EXPECT_THAT(LoadTlsClientFiles(certs_.ca, certs_.client_cert, certs_.server_key),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("does not match the certificate in --tls-cert")));
}

}  // namespace
}  // namespace tuneledger
