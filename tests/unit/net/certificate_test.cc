#include "net/certificate.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace custos::net {
namespace {

crypto::PrivateKey new_key(crypto::Algorithm alg = crypto::Algorithm::kEd25519) {
  Result<crypto::PrivateKey> key = crypto::PrivateKey::generate(alg);
  EXPECT_TRUE(key.ok()) << key.status().to_string();
  return std::move(key).value();
}

std::string certificate_for(const crypto::PrivateKey& key,
                            const std::string& name = "custos-node-0") {
  Result<std::string> pem = self_signed_certificate_pem(key, name, 365);
  EXPECT_TRUE(pem.ok()) << pem.status().to_string();
  return pem.ok() ? *pem : std::string();
}

TEST(Certificate, PublicKeyRoundTripsEd25519) {
  crypto::PrivateKey key = new_key();
  std::string pem = certificate_for(key);
  EXPECT_TRUE(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
  Result<crypto::PublicKey> extracted = certificate_public_key(pem);
  ASSERT_TRUE(extracted.ok()) << extracted.status().to_string();
  EXPECT_EQ(extracted->spki_der(), key.public_key().spki_der());
  EXPECT_EQ(extracted->algorithm(), crypto::Algorithm::kEd25519);
}

TEST(Certificate, IsValidlySelfSigned) {
  crypto::PrivateKey key = new_key();
  Result<Bytes> der = certificate_der(certificate_for(key));
  ASSERT_TRUE(der.ok()) << der.status().to_string();
  Result<crypto::PublicKey> verified = self_signed_certificate_key(*der);
  ASSERT_TRUE(verified.ok()) << verified.status().to_string();
  EXPECT_EQ(verified->spki_der(), key.public_key().spki_der());
}

TEST(Certificate, Es256KeysWorkToo) {
  crypto::PrivateKey key = new_key(crypto::Algorithm::kES256);
  Result<Bytes> der = certificate_der(certificate_for(key));
  ASSERT_TRUE(der.ok()) << der.status().to_string();
  Result<crypto::PublicKey> verified = self_signed_certificate_key(*der);
  ASSERT_TRUE(verified.ok()) << verified.status().to_string();
  EXPECT_EQ(verified->spki_der(), key.public_key().spki_der());
}

TEST(Certificate, TwoCertificatesOfOneKeyDiffer) {
  crypto::PrivateKey key = new_key();
  // Random serials: a reissued certificate is never byte-identical.
  EXPECT_NE(certificate_for(key), certificate_for(key));
}

TEST(Certificate, TamperedSignatureIsRefused) {
  Result<Bytes> der = certificate_der(certificate_for(new_key()));
  ASSERT_TRUE(der.ok());
  Bytes tampered = *der;
  tampered.back() ^= 0x01;  // the Ed25519 signature is the last 64 bytes
  Result<crypto::PublicKey> verified = self_signed_certificate_key(tampered);
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.status().code(), ErrorCode::kBadSignature);
}

TEST(Certificate, MalformedPemIsRefused) {
  crypto::PrivateKey key = new_key();
  const std::string cert = certificate_for(key);
  const std::string not_a_certificate[] = {
      "",
      "hello",
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      key.public_key().to_pem(),  // a public key, not a certificate
      cert + cert,                // two blocks
      cert.substr(0, cert.size() / 2),
      std::string(kCertificatePemBytesMax + 1, 'A'),
  };
  for (const std::string& pem : not_a_certificate) {
    Result<crypto::PublicKey> extracted = certificate_public_key(pem);
    ASSERT_FALSE(extracted.ok()) << pem;
    EXPECT_EQ(extracted.status().code(), ErrorCode::kMalformed) << pem;
  }
}

TEST(Certificate, TrailingDerBytesAreRefused) {
  Result<Bytes> der = certificate_der(certificate_for(new_key()));
  ASSERT_TRUE(der.ok());
  Bytes longer = *der;
  longer.push_back(0);
  EXPECT_EQ(self_signed_certificate_key(longer).status().code(), ErrorCode::kMalformed);
  EXPECT_EQ(self_signed_certificate_key(Bytes{0x30, 0x00}).status().code(), ErrorCode::kMalformed);
}

TEST(Certificate, BadRequestsAreRefused) {
  crypto::PrivateKey key = new_key();
  EXPECT_EQ(self_signed_certificate_pem(key, "", 365).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(self_signed_certificate_pem(key, std::string(kCommonNameBytesMax + 1, 'n'), 365)
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(self_signed_certificate_pem(key, "n", 0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(self_signed_certificate_pem(key, "n", kCertificateValidDaysMax + 1).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_TRUE(self_signed_certificate_pem(key, std::string(kCommonNameBytesMax, 'n'),
                                          kCertificateValidDaysMax)
                  .ok());
}

// The openssl command line reads what we write: an independent parser.
TEST(Certificate, OpensslCommandLineParsesIt) {
  testutil::TempDir dir("custos-net-cert");
  std::string path = dir.path() + "/node.pem";
  {
    std::ofstream out(path);
    out << certificate_for(new_key(), "custos-node-7");
  }
  std::string command = "openssl x509 -in " + path + " -noout -text 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string text;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) text.append(buf.data(), n);
  int rc = pclose(pipe);
  ASSERT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("ED25519"), std::string::npos) << text;
  EXPECT_NE(text.find("CN = custos-node-7"), std::string::npos) << text;
  EXPECT_NE(text.find("CA:FALSE"), std::string::npos) << text;
  EXPECT_NE(text.find("TLS Web Client Authentication"), std::string::npos) << text;
}

}  // namespace
}  // namespace custos::net
