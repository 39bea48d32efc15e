#include "net/certificate.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "crypto/openssl.h"

namespace custos::net {

namespace {

using namespace custos::crypto::openssl;  // NOLINT(google-build-using-namespace)

Status openssl_failure(const char* what) {
  return error(ErrorCode::kInternal, std::string(what) + ": " + take_openssl_error());
}

// crypto::PrivateKey keeps OpenSSL out of its interface; its PKCS#8 PEM is
// the documented way across.
Result<PkeyPtr> to_evp(const crypto::PrivateKey& key) {
  std::string pem = key.to_pem();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return openssl_failure("BIO_new_mem_buf");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!pkey) return openssl_failure("PEM_read_bio_PrivateKey");
  return pkey;
}

Status add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return openssl_failure("X509_add_ext");
  return Status();
}

// A random positive 127-bit serial: RFC 5280 wants serials unique per
// issuer, and every node is its own issuer, so randomness suffices.
Status set_random_serial(X509* cert) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return openssl_failure("RAND_bytes");
  raw[0] &= 0x7f;
  raw[0] |= 0x01;  // never zero, never a shorter encoding than intended
  std::unique_ptr<BIGNUM, BnFree> bn(BN_bin2bn(raw, sizeof(raw), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return openssl_failure("serial number");
  }
  return Status();
}

Status set_names_and_dates(X509* cert, const std::string& common_name, int valid_days) {
  X509_NAME* name = X509_get_subject_name(cert);
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1 ||
      X509_set_issuer_name(cert, name) != 1) {
    return openssl_failure("certificate name");
  }
  constexpr long kSkewSeconds = 24L * 3600;  // tolerate peers whose clocks run behind
  if (X509_gmtime_adj(X509_getm_notBefore(cert), -kSkewSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), valid_days, 0, nullptr) == nullptr) {
    return openssl_failure("certificate dates");
  }
  return Status();
}

Status check_certificate_request(const std::string& common_name, int valid_days) {
  if (common_name.empty() || common_name.size() > kCommonNameBytesMax) {
    return error(ErrorCode::kInvalidArgument, "certificate common name must be 1 to " +
                                                  std::to_string(kCommonNameBytesMax) + " bytes");
  }
  if (valid_days < 1 || valid_days > kCertificateValidDaysMax) {
    return error(ErrorCode::kInvalidArgument, "certificate validity must be 1 to " +
                                                  std::to_string(kCertificateValidDaysMax) +
                                                  " days, got " + std::to_string(valid_days));
  }
  return Status();
}

Result<std::string> to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return openssl_failure("PEM_write_X509");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<X509Ptr> parse_der(ByteView der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    return error(ErrorCode::kMalformed, "not a DER X.509 certificate: " + take_openssl_error());
  }
  if (p != der.data() + der.size()) {
    return error(ErrorCode::kMalformed, "trailing bytes after the DER certificate");
  }
  return cert;
}

Result<crypto::PublicKey> key_of(X509* cert) {
  EVP_PKEY* pkey = X509_get0_pubkey(cert);
  if (pkey == nullptr) {
    return error(ErrorCode::kMalformed, "certificate public key: " + take_openssl_error());
  }
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) return error(ErrorCode::kMalformed, "certificate public key is not encodable");
  std::unique_ptr<unsigned char, OpensslFree> owned(der);
  return crypto::PublicKey::from_spki_der(ByteView(der, static_cast<size_t>(len)));
}

}  // namespace

Result<std::string> self_signed_certificate_pem(const crypto::PrivateKey& key,
                                                const std::string& common_name, int valid_days) {
  CUSTOS_RETURN_IF_ERROR(check_certificate_request(common_name, valid_days));
  CUSTOS_ASSIGN_OR_RETURN(PkeyPtr pkey, to_evp(key));
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return openssl_failure("X509_new");
  }
  CUSTOS_RETURN_IF_ERROR(set_random_serial(cert.get()));
  CUSTOS_RETURN_IF_ERROR(set_names_and_dates(cert.get(), common_name, valid_days));
  if (X509_set_pubkey(cert.get(), pkey.get()) != 1) return openssl_failure("X509_set_pubkey");
  // An end-entity certificate usable on both ends of a mutual TLS connection.
  CUSTOS_RETURN_IF_ERROR(add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  CUSTOS_RETURN_IF_ERROR(add_extension(cert.get(), NID_key_usage, "critical,digitalSignature"));
  CUSTOS_RETURN_IF_ERROR(add_extension(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  // Ed25519 signs the message itself (no digest); ES256 uses SHA-256.
  const EVP_MD* md = key.algorithm() == crypto::Algorithm::kEd25519 ? nullptr : EVP_sha256();
  if (X509_sign(cert.get(), pkey.get(), md) <= 0) return openssl_failure("X509_sign");
  return to_pem(cert.get());
}

Result<Bytes> certificate_der(std::string_view certificate_pem) {
  if (certificate_pem.size() > kCertificatePemBytesMax) {
    return error(ErrorCode::kMalformed, "certificate PEM text is too large");
  }
  BioPtr bio(BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size())));
  if (!bio) return openssl_failure("BIO_new_mem_buf");
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
    take_openssl_error();
    return error(ErrorCode::kMalformed, "not a PEM certificate: no -----BEGIN ...----- block");
  }
  std::unique_ptr<char, OpensslFree> name_owner(name);
  std::unique_ptr<char, OpensslFree> header_owner(header);
  std::unique_ptr<unsigned char, OpensslFree> data_owner(data);
  if (std::string_view(name) != "CERTIFICATE") {
    return error(ErrorCode::kMalformed,
                 std::string("expected a BEGIN CERTIFICATE block, got BEGIN ") + name);
  }
  Bytes der(data, data + len);
  if (pem_block_follows(bio.get())) {
    return error(ErrorCode::kMalformed, "PEM text holds more than one block; give one certificate");
  }
  return der;
}

Result<crypto::PublicKey> certificate_public_key(std::string_view certificate_pem) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes der, certificate_der(certificate_pem));
  CUSTOS_ASSIGN_OR_RETURN(X509Ptr cert, parse_der(der));
  return key_of(cert.get());
}

Result<crypto::PublicKey> self_signed_certificate_key(ByteView certificate_der) {
  CUSTOS_ASSIGN_OR_RETURN(X509Ptr cert, parse_der(certificate_der));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key, key_of(cert.get()));
  if (X509_verify(cert.get(), X509_get0_pubkey(cert.get())) != 1) {
    take_openssl_error();
    return error(ErrorCode::kBadSignature,
                 "certificate signature does not verify under its own public key");
  }
  return key;
}

}  // namespace custos::net
