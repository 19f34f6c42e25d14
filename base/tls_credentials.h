// TLS for tuneledger's gRPC connections, in one place: reading and checking the PEM files that
// --tls-cert, --tls-key, --tls-client-ca (tuneledger-server) and --tls-ca, --tls-cert, --tls-key
// (tunectl, tuneledger-worker) name, and turning them into gRPC credentials.
//
// Files are read and parsed with OpenSSL when the program starts, so a missing file, a file that
// holds no certificate or key, or a key that does not belong to the certificate is one
// INVALID_ARGUMENT naming the flag, instead of a listener that fails to bind or a handshake
// that fails on the first call. Empty contents everywhere mean "no TLS": the credentials are
// then insecure (plaintext), exactly as before TLS existed.
//
// Thread safety: free functions without shared state; the structs are plain values.
#ifndef TUNELEDGER_BASE_TLS_CREDENTIALS_H_
#define TUNELEDGER_BASE_TLS_CREDENTIALS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tuneledger {

// What a server listener presents: its certificate chain and key, and the CA certificates it
// verifies client certificates against (empty: it asks for none).
struct TlsServerPem {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;
  bool enabled() const { return !cert_chain.empty(); }
};

// What a client trusts and (optionally) presents.
struct TlsClientPem {
  std::string ca;  // the CA certificates the server's certificate must chain to
  std::string cert_chain;
  std::string private_key;
  bool enabled() const { return !ca.empty(); }
};

// The files of tuneledger-server's --tls-cert, --tls-key and --tls-client-ca; all empty: no TLS.
// Which combinations are allowed is the flag parser's to check (server/server_flags.cc).
// INVALID_ARGUMENT names the flag: "--tls-key: FILE does not match the certificate in
// --tls-cert FILE".
absl::StatusOr<TlsServerPem> LoadTlsServerFiles(const std::string& cert_file,
                                                const std::string& key_file,
                                                const std::string& client_ca_file);

// The files of a client's --tls-ca, --tls-cert and --tls-key (cert and key optional, together;
// both need a CA). INVALID_ARGUMENT names the flag.
absl::StatusOr<TlsClientPem> LoadTlsClientFiles(const std::string& ca_file,
                                                const std::string& cert_file,
                                                const std::string& key_file);

// SSL server credentials for `pem` (when require_client_cert, a client without a certificate
// issued by pem.client_ca is refused during the handshake), or insecure ones when !enabled().
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsServerPem& pem,
                                                               bool require_client_cert);

// SSL channel credentials for `pem`, or insecure ones when !enabled().
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsClientPem& pem);

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_TLS_CREDENTIALS_H_
