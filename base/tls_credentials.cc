#include "base/tls_credentials.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tuneledger {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& text) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The first certificate of a PEM bundle (the leaf of a chain); INVALID_ARGUMENT when there is
// none.
absl::StatusOr<X509Ptr> FirstCertificate(const std::string& flag, const std::string& path,
                                         const std::string& pem) {
  auto bio = MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", path, " holds no PEM certificate"));
  }
  return cert;
}

absl::StatusOr<KeyPtr> PrivateKey(const std::string& flag, const std::string& path,
                                  const std::string& pem) {
  auto bio = MemoryBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", path, " holds no unencrypted PEM private key"));
  }
  return key;
}

// Reads a certificate and its key and checks that they belong together.
absl::Status LoadCertAndKey(const std::string& cert_flag, const std::string& cert_file,
                            const std::string& key_flag, const std::string& key_file,
                            std::string& cert_pem, std::string& key_pem) {
  TL_ASSIGN_OR_RETURN(cert_pem, ReadPemFile(cert_flag, cert_file));
  TL_ASSIGN_OR_RETURN(const X509Ptr cert, FirstCertificate(cert_flag, cert_file, cert_pem));
  TL_ASSIGN_OR_RETURN(key_pem, ReadPemFile(key_flag, key_file));
  TL_ASSIGN_OR_RETURN(const KeyPtr key, PrivateKey(key_flag, key_file, key_pem));
  const bool match = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) {
    return absl::InvalidArgumentError(absl::StrCat("--", key_flag, ": ", key_file,
                                                   " does not match the certificate in --",
                                                   cert_flag, " ", cert_file));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadCaFile(const std::string& flag, const std::string& path) {
  TL_ASSIGN_OR_RETURN(std::string pem, ReadPemFile(flag, path));
  TL_RETURN_IF_ERROR(FirstCertificate(flag, path, pem).status());
  return pem;
}

}  // namespace

absl::StatusOr<TlsServerPem> LoadTlsServerFiles(const std::string& cert_file,
                                                const std::string& key_file,
                                                const std::string& client_ca_file) {
  TlsServerPem pem;
  if (cert_file.empty()) return pem;
  TL_RETURN_IF_ERROR(
      LoadCertAndKey("tls-cert", cert_file, "tls-key", key_file, pem.cert_chain, pem.private_key));
  if (!client_ca_file.empty()) {
    TL_ASSIGN_OR_RETURN(pem.client_ca, LoadCaFile("tls-client-ca", client_ca_file));
  }
  return pem;
}

absl::StatusOr<TlsClientPem> LoadTlsClientFiles(const std::string& ca_file,
                                                const std::string& cert_file,
                                                const std::string& key_file) {
  TlsClientPem pem;
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key: give both (the client certificate and its key) or neither");
  }
  if (ca_file.empty()) {
    if (!cert_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert: needs --tls-ca (the CA that issued the server's certificate)");
    }
    return pem;
  }
  TL_ASSIGN_OR_RETURN(pem.ca, LoadCaFile("tls-ca", ca_file));
  if (!cert_file.empty()) {
    TL_RETURN_IF_ERROR(LoadCertAndKey("tls-cert", cert_file, "tls-key", key_file, pem.cert_chain,
                                      pem.private_key));
  }
  return pem;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsServerPem& pem,
                                                               bool require_client_cert) {
  if (!pem.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (require_client_cert) options.pem_root_certs = pem.client_ca;
  options.pem_key_cert_pairs.push_back({pem.private_key, pem.cert_chain});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsClientPem& pem) {
  if (!pem.enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = pem.ca;
  options.pem_private_key = pem.private_key;
  options.pem_cert_chain = pem.cert_chain;
  return grpc::SslCredentials(options);
}

}  // namespace tuneledger
