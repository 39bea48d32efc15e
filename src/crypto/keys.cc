#include "crypto/keys.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "crypto/hash.h"
#include "crypto/openssl.h"

namespace custos::crypto {

namespace {

// ---------------------------------------------------------------------------
// OpenSSL plumbing

using namespace custos::crypto::openssl;  // NOLINT(google-build-using-namespace)

// For failures that only allocation exhaustion or a broken OpenSSL can cause:
// functions documented as infallible (sign, to_pem) cannot report them.
[[noreturn]] void fatal(const char* what) {
  std::string reason = take_openssl_error();
  std::fprintf(stderr, "custos: fatal crypto failure in %s: %s\n", what, reason.c_str());
  std::abort();
}

void ensure_sodium() {
  // Function-local static: C++ guarantees one thread-safe initialization.
  static const bool kReady = sodium_init() >= 0;
  if (!kReady) fatal("sodium_init");
}

// DER prefixes of the only SubjectPublicKeyInfo forms we accept. Fixing the
// exact bytes makes the kid (a hash of them) unique per key: no compressed
// points, no explicit curve parameters, no alternative encodings.
constexpr std::array<uint8_t, 27> kP256SpkiPrefix = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
    0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
constexpr size_t kP256SpkiBytes = 91;
constexpr std::array<uint8_t, 12> kEd25519SpkiPrefix = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
constexpr size_t kEd25519SpkiBytes = 44;
constexpr size_t kEd25519KeyBytes = 32;
constexpr size_t kEs256ScalarBytes = 32;

bool has_prefix(const Bytes& der, ByteView prefix) {
  return der.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), der.begin());
}

// Which of our algorithms an OpenSSL key is, or why it is not one of them.
Result<Algorithm> classify(EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "ED25519")) return Algorithm::kEd25519;
  if (!EVP_PKEY_is_a(pkey, "EC")) {
    const char* type = EVP_PKEY_get0_type_name(pkey);
    return error(ErrorCode::kInvalidArgument,
                 std::string("unsupported key type ") + (type ? type : "(unknown)") +
                     ": custos accepts ES256 (EC P-256) and Ed25519 keys");
  }
  char group[80] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len) != 1) {
    take_openssl_error();
    return error(ErrorCode::kInvalidArgument,
                 "EC key without a named curve (explicit parameters) is not supported: "
                 "ES256 needs the named curve P-256 (prime256v1)");
  }
  int nid = OBJ_sn2nid(group);
  if (nid == NID_undef) nid = EC_curve_nist2nid(group);
  if (nid != NID_X9_62_prime256v1) {
    return error(ErrorCode::kInvalidArgument,
                 std::string("unsupported EC curve ") + group + ": ES256 needs P-256 (prime256v1)");
  }
  return Algorithm::kES256;
}

Result<Bytes> spki_of(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) {
    return error(ErrorCode::kMalformed,
                 "cannot encode the public key as SPKI: " + take_openssl_error());
  }
  std::unique_ptr<unsigned char, OpensslFree> owned(der);
  return Bytes(der, der + len);
}

Status check_spki_shape(Algorithm alg, const Bytes& der) {
  if (alg == Algorithm::kES256) {
    if (der.size() != kP256SpkiBytes || !has_prefix(der, kP256SpkiPrefix)) {
      return error(ErrorCode::kInvalidArgument,
                   "ES256 public key must be a named-curve P-256 key with an uncompressed point");
    }
  } else if (der.size() != kEd25519SpkiBytes || !has_prefix(der, kEd25519SpkiPrefix)) {
    return error(ErrorCode::kInvalidArgument, "Ed25519 public key SPKI has an unexpected form");
  }
  return Status();
}

// ---------------------------------------------------------------------------
// PEM

struct PemBlock {
  std::string label;  // e.g. "PRIVATE KEY"
  Bytes der;
};

// Exactly one PEM block, without encryption headers. Text before the block
// is tolerated (OpenSSL writes none, but people paste keys with comments).
Result<PemBlock> read_single_pem(std::string_view pem) {
  if (pem.size() > 64 * 1024) return error(ErrorCode::kMalformed, "PEM text is too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fatal("BIO_new_mem_buf");
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
    take_openssl_error();
    return error(ErrorCode::kMalformed, "not a PEM key: no valid -----BEGIN ...----- block found");
  }
  std::unique_ptr<char, OpensslFree> name_owner(name);
  std::unique_ptr<char, OpensslFree> header_owner(header);
  std::unique_ptr<unsigned char, OpensslFree> data_owner(data);
  if (header != nullptr && header[0] != '\0') {
    return error(
        ErrorCode::kInvalidArgument,
        "PEM block has headers (legacy encryption?): give an unencrypted PKCS#8 / SPKI key");
  }
  PemBlock block{name, Bytes(data, data + len)};

  if (pem_block_follows(bio.get())) {
    return error(ErrorCode::kInvalidArgument, "PEM text holds more than one block; give one key");
  }
  return block;
}

bool is_private_label(const std::string& label) {
  return label == "PRIVATE KEY" || label == "ENCRYPTED PRIVATE KEY" ||
         label.ends_with(" PRIVATE KEY");
}

bool is_public_label(const std::string& label) {
  return label == "PUBLIC KEY" || label.ends_with(" PUBLIC KEY");
}

std::string pem_wrap(const char* label, ByteView der) {
  std::string b64 = base64_encode(der);
  std::string out = std::string("-----BEGIN ") + label + "-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) {
    out.append(b64, i, 64);
    out.push_back('\n');
  }
  out += std::string("-----END ") + label + "-----\n";
  return out;
}

// ---------------------------------------------------------------------------
// ES256 signature form conversion (COSE raw r||s <-> DER ECDSA-Sig-Value)

// Appends a DER INTEGER holding the unsigned big-endian `value`.
void append_der_uint(ByteView value, uint8_t* out, size_t* pos) {
  size_t skip = 0;
  while (skip < value.size() && value[skip] == 0) ++skip;
  ByteView digits = value.subspan(skip);
  // A leading 0x00 keeps the integer positive when the top bit is set; zero
  // itself is one 0x00 byte.
  bool pad = digits.empty() || (digits[0] & 0x80) != 0;
  out[(*pos)++] = 0x02;
  out[(*pos)++] = static_cast<uint8_t>(digits.size() + (pad ? 1 : 0));
  if (pad) out[(*pos)++] = 0x00;
  std::memcpy(out + *pos, digits.data(), digits.size());
  *pos += digits.size();
}

// Raw 64-byte r||s to DER; the result fits in 72 bytes (two 33-byte INTEGERs
// plus headers), so no allocation.
size_t raw_to_der(ByteView raw, std::array<uint8_t, 80>& der) {
  size_t pos = 2;  // SEQUENCE header filled in below (length < 128)
  append_der_uint(raw.first(kEs256ScalarBytes), der.data(), &pos);
  append_der_uint(raw.subspan(kEs256ScalarBytes), der.data(), &pos);
  der[0] = 0x30;
  der[1] = static_cast<uint8_t>(pos - 2);
  return pos;
}

Bytes der_to_raw(const unsigned char* der, size_t len) {
  const unsigned char* p = der;
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig) fatal("d2i_ECDSA_SIG");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  Bytes raw(kSignatureBytes);
  if (BN_bn2binpad(r, raw.data(), kEs256ScalarBytes) != kEs256ScalarBytes ||
      BN_bn2binpad(s, raw.data() + kEs256ScalarBytes, kEs256ScalarBytes) != kEs256ScalarBytes) {
    fatal("BN_bn2binpad");
  }
  return raw;
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

// ---------------------------------------------------------------------------
// Algorithms

int64_t cose_algorithm(Algorithm alg) {
  return alg == Algorithm::kES256 ? kCoseAlgES256 : kCoseAlgEd25519;
}

Result<Algorithm> algorithm_from_cose(int64_t cose_alg) {
  switch (cose_alg) {
    case kCoseAlgES256:
      return Algorithm::kES256;
    case kCoseAlgEd25519:
    case kCoseAlgEdDSA:
      return Algorithm::kEd25519;
    default:
      return error(ErrorCode::kInvalidArgument,
                   "unsupported COSE algorithm " + std::to_string(cose_alg) +
                       " (custos accepts -7 ES256, -19 Ed25519 and -8 EdDSA)");
  }
}

const char* algorithm_name(Algorithm alg) {
  return alg == Algorithm::kES256 ? "ES256" : "Ed25519";
}

Result<Algorithm> algorithm_from_name(std::string_view name) {
  if (ascii_iequals(name, "ES256")) return Algorithm::kES256;
  if (ascii_iequals(name, "Ed25519")) return Algorithm::kEd25519;
  return error(ErrorCode::kInvalidArgument,
               "unknown algorithm name '" + std::string(name) + "' (expected ES256 or Ed25519)");
}

// ---------------------------------------------------------------------------
// PublicKey

struct PublicKey::Impl {
  Algorithm alg;
  PkeyPtr pkey;  // ES256 verification
  Bytes spki_der;
  Hash256 kid;
  std::array<uint8_t, kEd25519KeyBytes> ed_raw{};  // Ed25519 verification (libsodium)
};

Result<PublicKey> PublicKey::from_spki_der(ByteView der) {
  const unsigned char* p = der.data();
  PkeyPtr pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!pkey) {
    return error(ErrorCode::kMalformed,
                 "not a SubjectPublicKeyInfo DER public key: " + take_openssl_error());
  }
  if (p != der.data() + der.size()) {
    return error(ErrorCode::kMalformed, "trailing bytes after the SPKI DER public key");
  }
  CUSTOS_ASSIGN_OR_RETURN(Algorithm alg, classify(pkey.get()));
  CUSTOS_ASSIGN_OR_RETURN(Bytes canonical, spki_of(pkey.get()));
  CUSTOS_RETURN_IF_ERROR(check_spki_shape(alg, canonical));
  // The kid hashes these bytes; a second encoding of one key must not exist.
  if (!std::equal(canonical.begin(), canonical.end(), der.begin(), der.end())) {
    return error(ErrorCode::kMalformed, "SPKI DER public key is not canonically encoded");
  }

  auto impl = std::make_shared<Impl>();
  impl->alg = alg;
  if (alg == Algorithm::kEd25519) {
    size_t len = impl->ed_raw.size();
    if (EVP_PKEY_get_raw_public_key(pkey.get(), impl->ed_raw.data(), &len) != 1 ||
        len != impl->ed_raw.size()) {
      return error(ErrorCode::kMalformed, "Ed25519 public key: " + take_openssl_error());
    }
    ensure_sodium();
    if (crypto_core_ed25519_is_valid_point(impl->ed_raw.data()) != 1) {
      return error(ErrorCode::kInvalidArgument,
                   "Ed25519 public key is not a valid point of the main subgroup");
    }
  }
  impl->pkey = std::move(pkey);
  impl->kid = sha256(canonical);
  impl->spki_der = std::move(canonical);
  PublicKey key;
  key.impl_ = std::move(impl);
  return key;
}

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  CUSTOS_ASSIGN_OR_RETURN(PemBlock block, read_single_pem(pem));
  if (is_private_label(block.label)) {
    return error(ErrorCode::kInvalidArgument,
                 "expected a public key (BEGIN PUBLIC KEY) but got a private key (BEGIN " +
                     block.label + "); extract it with `openssl pkey -pubout`");
  }
  if (block.label == "RSA PUBLIC KEY") {
    return error(ErrorCode::kInvalidArgument,
                 "unsupported key type RSA: custos accepts ES256 (EC P-256) and Ed25519 keys");
  }
  if (block.label != "PUBLIC KEY") {
    return error(ErrorCode::kInvalidArgument,
                 "expected a BEGIN PUBLIC KEY (SPKI) PEM block, got BEGIN " + block.label);
  }
  return from_spki_der(block.der);
}

Algorithm PublicKey::algorithm() const {
  return impl_->alg;
}
const Bytes& PublicKey::spki_der() const {
  return impl_->spki_der;
}
const Hash256& PublicKey::kid() const {
  return impl_->kid;
}
std::string PublicKey::to_pem() const {
  return pem_wrap("PUBLIC KEY", impl_->spki_der);
}

Status PublicKey::verify(ByteView message, ByteView signature) const {
  if (signature.size() != kSignatureBytes) {
    return error(ErrorCode::kBadSignature, std::string(algorithm_name(impl_->alg)) +
                                               " signature must be 64 bytes, got " +
                                               std::to_string(signature.size()));
  }
  if (impl_->alg == Algorithm::kEd25519) {
    if (crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                    impl_->ed_raw.data()) != 0) {
      return error(ErrorCode::kBadSignature, "Ed25519 signature does not verify");
    }
    return Status();
  }
  std::array<uint8_t, 80> der;
  size_t der_len = raw_to_der(signature, der);
  // A context per call: contexts are not shareable between threads, the key is.
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) != 1) {
    fatal("EVP_DigestVerifyInit");
  }
  int rc = EVP_DigestVerify(ctx.get(), der.data(), der_len, message.data(), message.size());
  if (rc != 1) {
    ERR_clear_error();
    return error(ErrorCode::kBadSignature, "ES256 signature does not verify");
  }
  return Status();
}

// ---------------------------------------------------------------------------
// PrivateKey

namespace {

using EdSecret = std::array<uint8_t, crypto_sign_SECRETKEYBYTES>;

// A validated key, built outside the class so that generate() and from_pem()
// share one validation path. It holds no raw secret bytes: those are derived
// straight into the Impl, so no copies are left behind in temporaries.
struct PrivateParts {
  Algorithm alg;
  PkeyPtr pkey;
  PublicKey public_key;
};

// Derives the libsodium secret from the OpenSSL key and checks both libraries
// agree on the public key, so signatures verify under the SPKI we publish.
Status load_ed25519_secret(EVP_PKEY* pkey, const PublicKey& pub, EdSecret& secret) {
  std::array<uint8_t, kEd25519KeyBytes> seed;
  size_t len = seed.size();
  if (EVP_PKEY_get_raw_private_key(pkey, seed.data(), &len) != 1 || len != seed.size()) {
    return error(ErrorCode::kMalformed, "Ed25519 private key: " + take_openssl_error());
  }
  ensure_sodium();
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> derived_pk;
  crypto_sign_seed_keypair(derived_pk.data(), secret.data(), seed.data());
  sodium_memzero(seed.data(), seed.size());
  const Bytes& spki = pub.spki_der();
  if (!std::equal(derived_pk.begin(), derived_pk.end(), spki.end() - kEd25519KeyBytes)) {
    sodium_memzero(secret.data(), secret.size());
    return error(ErrorCode::kMalformed,
                 "Ed25519 private key does not match its embedded public key");
  }
  return Status();
}

Result<PrivateParts> private_parts(PkeyPtr pkey) {
  CUSTOS_ASSIGN_OR_RETURN(Algorithm alg, classify(pkey.get()));
  CUSTOS_ASSIGN_OR_RETURN(Bytes spki, spki_of(pkey.get()));
  CUSTOS_ASSIGN_OR_RETURN(PublicKey pub, PublicKey::from_spki_der(spki));
  if (alg == Algorithm::kEd25519) {
    EdSecret probe;
    Status s = load_ed25519_secret(pkey.get(), pub, probe);
    sodium_memzero(probe.data(), probe.size());
    CUSTOS_RETURN_IF_ERROR(s);
  }
  return PrivateParts{alg, std::move(pkey), std::move(pub)};
}

Result<PkeyPtr> generate_pkey(Algorithm alg) {
  EVP_PKEY* raw = alg == Algorithm::kES256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                           : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (raw == nullptr) {
    return error(ErrorCode::kInternal, "key generation failed: " + take_openssl_error());
  }
  return PkeyPtr(raw);
}

Result<PkeyPtr> parse_private_pem(std::string_view pem) {
  CUSTOS_ASSIGN_OR_RETURN(PemBlock block, read_single_pem(pem));
  if (is_public_label(block.label)) {
    return error(ErrorCode::kInvalidArgument,
                 "expected a private key (BEGIN PRIVATE KEY) but got a public key (BEGIN " +
                     block.label + ")");
  }
  if (block.label == "ENCRYPTED PRIVATE KEY") {
    return error(ErrorCode::kInvalidArgument,
                 "encrypted PKCS#8 private keys are not supported; decrypt with "
                 "`openssl pkcs8 -topk8 -nocrypt`");
  }
  if (block.label == "RSA PRIVATE KEY") {
    return error(ErrorCode::kInvalidArgument,
                 "unsupported key type RSA: custos accepts ES256 (EC P-256) and Ed25519 keys");
  }
  if (block.label == "EC PRIVATE KEY") {
    return error(ErrorCode::kInvalidArgument,
                 "SEC1 'EC PRIVATE KEY' PEM is not accepted; convert it to PKCS#8 with "
                 "`openssl pkcs8 -topk8 -nocrypt`");
  }
  if (block.label != "PRIVATE KEY") {
    return error(ErrorCode::kInvalidArgument,
                 "expected a BEGIN PRIVATE KEY (PKCS#8) PEM block, got BEGIN " + block.label);
  }
  const unsigned char* p = block.der.data();
  std::unique_ptr<PKCS8_PRIV_KEY_INFO, Pkcs8Free> info(
      d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(block.der.size())));
  OPENSSL_cleanse(block.der.data(), block.der.size());
  if (!info) {
    return error(ErrorCode::kMalformed, "not a PKCS#8 private key: " + take_openssl_error());
  }
  if (p != block.der.data() + block.der.size()) {
    return error(ErrorCode::kMalformed, "trailing bytes after the PKCS#8 private key");
  }
  PkeyPtr pkey(EVP_PKCS82PKEY(info.get()));
  if (!pkey) {
    return error(ErrorCode::kMalformed, "unreadable PKCS#8 private key: " + take_openssl_error());
  }
  return pkey;
}

}  // namespace

struct PrivateKey::Impl {
  explicit Impl(PrivateParts p)
      : alg(p.alg), pkey(std::move(p.pkey)), public_key(std::move(p.public_key)) {
    // Validated by private_parts(), so failing here means OpenSSL broke.
    if (alg == Algorithm::kEd25519 &&
        !load_ed25519_secret(pkey.get(), public_key, ed_secret).ok()) {
      fatal("load_ed25519_secret");
    }
  }
  ~Impl() { sodium_memzero(ed_secret.data(), ed_secret.size()); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Algorithm alg;
  PkeyPtr pkey;  // ES256 signing and PEM output
  PublicKey public_key;
  EdSecret ed_secret{};  // Ed25519 signing (libsodium)
};

Result<PrivateKey> PrivateKey::generate(Algorithm alg) {
  CUSTOS_ASSIGN_OR_RETURN(PkeyPtr pkey, generate_pkey(alg));
  CUSTOS_ASSIGN_OR_RETURN(PrivateParts parts, private_parts(std::move(pkey)));
  PrivateKey key;
  key.impl_ = std::make_shared<const Impl>(std::move(parts));
  return key;
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  CUSTOS_ASSIGN_OR_RETURN(PkeyPtr pkey, parse_private_pem(pem));
  CUSTOS_ASSIGN_OR_RETURN(PrivateParts parts, private_parts(std::move(pkey)));
  PrivateKey key;
  key.impl_ = std::make_shared<const Impl>(std::move(parts));
  return key;
}

Algorithm PrivateKey::algorithm() const {
  return impl_->alg;
}
const PublicKey& PrivateKey::public_key() const {
  return impl_->public_key;
}

std::string PrivateKey::to_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) fatal("BIO_new");
  if (PEM_write_bio_PKCS8PrivateKey(bio.get(), impl_->pkey.get(), nullptr, nullptr, 0, nullptr,
                                    nullptr) != 1) {
    fatal("PEM_write_bio_PKCS8PrivateKey");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(len));
  OPENSSL_cleanse(data, static_cast<size_t>(len));
  return pem;
}

Bytes PrivateKey::sign(ByteView message) const {
  if (impl_->alg == Algorithm::kEd25519) {
    Bytes sig(crypto_sign_BYTES);
    crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(),
                         impl_->ed_secret.data());
    return sig;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) fatal("EVP_MD_CTX_new");
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) != 1) {
    fatal("EVP_DigestSignInit");
  }
  std::array<unsigned char, 80> der;
  size_t der_len = der.size();
  if (EVP_DigestSign(ctx.get(), der.data(), &der_len, message.data(), message.size()) != 1) {
    fatal("EVP_DigestSign");
  }
  return der_to_raw(der.data(), der_len);
}

}  // namespace custos::crypto
