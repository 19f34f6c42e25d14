// Throwaway TLS material for tests, made by the openssl command-line tool (deploy/install-deps.sh
// installs it) into a folder the test owns:
//
//   TempDir dir;
//   absl::StatusOr<TestCertificates> certs = MakeTestCertificates(dir.File("tls"));
//   server flags: --tls-cert certs->server_cert --tls-key certs->server_key
//   client flags: --tls-ca certs->ca [--tls-cert certs->client_cert --tls-key certs->client_key]
//
// One CA (P-256 keys, valid for two days) issues a server certificate for localhost and
// 127.0.0.1 and a client certificate; a second CA issues a client certificate the first CA does
// not vouch for. Every field is the path of a PEM file.
// Thread safety: a free function; give each call its own folder.
#ifndef TUNELEDGER_TESTS_TESTING_TEST_CERTIFICATES_H_
#define TUNELEDGER_TESTS_TESTING_TEST_CERTIFICATES_H_

#include <string>

#include "absl/status/statusor.h"

namespace tuneledger::testing {

struct TestCertificates {
  std::string ca;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;
  std::string client_key;
  std::string other_ca;
  std::string other_client_cert;  // issued by other_ca
  std::string other_client_key;
};

// Writes the files under `dir` (created if missing). INTERNAL with openssl's output if a step
// fails.
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir);

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_TESTING_TEST_CERTIFICATES_H_
