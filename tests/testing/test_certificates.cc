#include "tests/testing/test_certificates.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/child_process.h"
#include "base/status_macros.h"

namespace tuneledger::testing {
namespace {

// The extension sections the requests and certificates below name; "dn" is empty because
// every subject is given with -subj.
constexpr char kOpensslConfig[] = R"([req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[server]
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
[client]
extendedKeyUsage = clientAuth
)";

absl::Status Openssl(const std::vector<std::string>& args) {
  ChildProcessOptions options;
  options.argv = {"openssl"};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  TL_ASSIGN_OR_RETURN(CompletedProcess done,
                      ChildProcess::RunToCompletion(options, absl::Seconds(60)));
  if (!done.status.success()) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(options.argv, " "), ": ",
                                            done.status.ToString(), "\n", done.stderr_text));
  }
  return absl::OkStatus();
}

// A P-256 key in `key` and a certificate signing request for `subject` in `csr`.
absl::Status NewKeyAndRequest(const std::string& config, const std::string& subject,
                              const std::string& key, const std::string& csr) {
  return Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", key, "-out", csr, "-subj", subject, "-config", config});
}

absl::Status NewCa(const std::string& config, const std::string& name, const std::string& cert,
                   const std::string& key) {
  return Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + name,
                  "-config", config, "-extensions", "ca"});
}

absl::Status Issue(const std::string& config, const std::string& section, const std::string& csr,
                   const std::string& ca_cert, const std::string& ca_key, int serial,
                   const std::string& cert) {
  return Openssl({"x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial",
                  absl::StrCat(serial), "-days", "2", "-out", cert, "-extfile", config,
                  "-extensions", section});
}

}  // namespace

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  auto file = [&dir](const std::string& name) { return absl::StrCat(dir, "/", name); };
  const std::string config = file("openssl.cnf");
  std::ofstream(config) << kOpensslConfig;

  TestCertificates certs;
  certs.ca = file("ca.pem");
  certs.server_cert = file("server.pem");
  certs.server_key = file("server.key");
  certs.client_cert = file("client.pem");
  certs.client_key = file("client.key");
  certs.other_ca = file("other-ca.pem");
  certs.other_client_cert = file("other-client.pem");
  certs.other_client_key = file("other-client.key");
  TL_RETURN_IF_ERROR(NewCa(config, "tuneledger test CA", certs.ca, file("ca.key")));
  TL_RETURN_IF_ERROR(NewCa(config, "another test CA", certs.other_ca, file("other-ca.key")));
  TL_RETURN_IF_ERROR(
      NewKeyAndRequest(config, "/CN=localhost", certs.server_key, file("server.csr")));
  TL_RETURN_IF_ERROR(
      Issue(config, "server", file("server.csr"), certs.ca, file("ca.key"), 1, certs.server_cert));
  TL_RETURN_IF_ERROR(
      NewKeyAndRequest(config, "/CN=test-worker", certs.client_key, file("client.csr")));
  TL_RETURN_IF_ERROR(
      Issue(config, "client", file("client.csr"), certs.ca, file("ca.key"), 2, certs.client_cert));
  TL_RETURN_IF_ERROR(
      NewKeyAndRequest(config, "/CN=stranger", certs.other_client_key, file("other-client.csr")));
  TL_RETURN_IF_ERROR(Issue(config, "client", file("other-client.csr"), certs.other_ca,
                           file("other-ca.key"), 3, certs.other_client_cert));
  return certs;
}

}  // namespace tuneledger::testing
