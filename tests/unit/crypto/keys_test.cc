#include "crypto/keys.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <vector>

#include "crypto/hash.h"

namespace custos::crypto {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Helpers

std::string hex_of(const Hash256& h) {
  return to_hex(ByteView(h.data(), h.size()));
}

// A scratch directory for files exchanged with the openssl CLI.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "custos-keys-XXXXXX").string();
    char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, ByteView data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string read_text(const std::string& path) {
  Bytes b = read_file(path);
  return std::string(b.begin(), b.end());
}

// Runs a shell command; true when it exits 0. Output goes to a log so a
// failing test can show what openssl said.
bool run(const TempDir& dir, const std::string& cmd) {
  std::string full = "cd '" + dir.file("") + "' && (" + cmd + ") >>cmd.log 2>&1";
  int rc = std::system(full.c_str());
  if (rc != 0) ADD_FAILURE() << "command failed: " << cmd << "\n" << read_text(dir.file("cmd.log"));
  return rc == 0;
}

// Same, for commands expected to fail (no test failure recorded).
bool run_quiet(const TempDir& dir, const std::string& cmd) {
  std::string full = "cd '" + dir.file("") + "' && (" + cmd + ") >/dev/null 2>&1";
  return std::system(full.c_str()) == 0;
}

// COSE raw r||s -> DER, independently of the library under test.
Bytes raw_to_der(const Bytes& raw) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + 32, 32, nullptr);
  ECDSA_SIG_set0(sig, r, s);
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  Bytes out(der, der + len);
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

Bytes der_to_raw(const Bytes& der) {
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  EXPECT_NE(sig, nullptr);
  Bytes raw(64);
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw.data(), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw.data() + 32, 32);
  ECDSA_SIG_free(sig);
  return raw;
}

PrivateKey generate(Algorithm alg) {
  auto key = PrivateKey::generate(alg);
  EXPECT_TRUE(key.ok()) << key.status().to_string();
  return std::move(key).value();
}

// ---------------------------------------------------------------------------
// SHA-256

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(hex_of(sha256({})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of(sha256(as_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_of(sha256(as_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, IncrementalMatchesOneShot) {
  Sha256 h;
  h.update(as_view("a"));
  h.update({});
  h.update(as_view("bc"));
  EXPECT_EQ(h.finish(), sha256(as_view("abc")));
  // finish() leaves the object ready for a new message.
  EXPECT_EQ(h.finish(), sha256({}));
  h.update(as_view("abc"));
  EXPECT_EQ(h.finish(), sha256(as_view("abc")));
}

// ---------------------------------------------------------------------------
// Algorithm identifiers

TEST(Algorithms, CoseIdentifiers) {
  EXPECT_EQ(cose_algorithm(Algorithm::kES256), -7);
  EXPECT_EQ(cose_algorithm(Algorithm::kEd25519), -19);
  EXPECT_EQ(*algorithm_from_cose(-7), Algorithm::kES256);
  EXPECT_EQ(*algorithm_from_cose(-19), Algorithm::kEd25519);
  EXPECT_EQ(*algorithm_from_cose(-8), Algorithm::kEd25519);
  for (int64_t bad : {0, 1, -35, -36, -37, -257, -65535}) {
    auto r = algorithm_from_cose(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::to_string(bad)), std::string::npos);
  }
}

TEST(Algorithms, Names) {
  EXPECT_STREQ(algorithm_name(Algorithm::kES256), "ES256");
  EXPECT_STREQ(algorithm_name(Algorithm::kEd25519), "Ed25519");
  EXPECT_EQ(*algorithm_from_name("es256"), Algorithm::kES256);
  EXPECT_EQ(*algorithm_from_name("ED25519"), Algorithm::kEd25519);
  EXPECT_EQ(*algorithm_from_name("Ed25519"), Algorithm::kEd25519);
  EXPECT_FALSE(algorithm_from_name("RS256").ok());
  EXPECT_FALSE(algorithm_from_name("").ok());
  EXPECT_FALSE(algorithm_from_name("ES2566").ok());
}

// ---------------------------------------------------------------------------
// Sign / verify

class KeysTest : public ::testing::TestWithParam<Algorithm> {};

INSTANTIATE_TEST_SUITE_P(BothAlgorithms, KeysTest,
                         ::testing::Values(Algorithm::kES256, Algorithm::kEd25519),
                         [](const auto& info) { return std::string(algorithm_name(info.param)); });

TEST_P(KeysTest, SignVerify) {
  PrivateKey key = generate(GetParam());
  EXPECT_EQ(key.algorithm(), GetParam());
  EXPECT_EQ(key.public_key().algorithm(), GetParam());
  for (std::string msg : {std::string(), std::string("hello"), std::string(10000, 'x')}) {
    Bytes sig = key.sign(as_view(msg));
    ASSERT_EQ(sig.size(), kSignatureBytes);
    EXPECT_TRUE(key.public_key().verify(as_view(msg), sig).ok());
  }
}

TEST_P(KeysTest, TamperedMessageFails) {
  PrivateKey key = generate(GetParam());
  Bytes msg = to_bytes("the device reported 42");
  Bytes sig = key.sign(msg);
  for (size_t i = 0; i < msg.size(); ++i) {
    Bytes bad = msg;
    bad[i] ^= 0x01;
    Status s = key.public_key().verify(bad, sig);
    EXPECT_EQ(s.code(), ErrorCode::kBadSignature) << i;
  }
  Bytes longer = msg;
  longer.push_back(0);
  EXPECT_EQ(key.public_key().verify(longer, sig).code(), ErrorCode::kBadSignature);
}

TEST_P(KeysTest, TamperedSignatureFails) {
  PrivateKey key = generate(GetParam());
  Bytes msg = to_bytes("payload");
  Bytes sig = key.sign(msg);
  for (size_t i = 0; i < sig.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80}) {
      Bytes bad = sig;
      bad[i] ^= flip;
      EXPECT_EQ(key.public_key().verify(msg, bad).code(), ErrorCode::kBadSignature) << i;
    }
  }
  EXPECT_EQ(key.public_key().verify(msg, Bytes(64, 0)).code(), ErrorCode::kBadSignature);
  EXPECT_EQ(key.public_key().verify(msg, Bytes(64, 0xff)).code(), ErrorCode::kBadSignature);
}

TEST_P(KeysTest, WrongLengthSignatureFails) {
  PrivateKey key = generate(GetParam());
  Bytes msg = to_bytes("payload");
  Bytes sig = key.sign(msg);
  for (size_t len : {0, 1, 32, 63, 65, 72, 128}) {
    Bytes bad = sig;
    bad.resize(len, 0);
    Status s = key.public_key().verify(msg, bad);
    EXPECT_EQ(s.code(), ErrorCode::kBadSignature) << len;
    EXPECT_NE(s.message().find("64 bytes"), std::string::npos) << s.message();
  }
}

TEST_P(KeysTest, OtherKeyFails) {
  PrivateKey a = generate(GetParam());
  PrivateKey b = generate(GetParam());
  Bytes msg = to_bytes("payload");
  EXPECT_EQ(b.public_key().verify(msg, a.sign(msg)).code(), ErrorCode::kBadSignature);
  EXPECT_NE(a.public_key().kid(), b.public_key().kid());
}

TEST_P(KeysTest, PemRoundTrip) {
  PrivateKey key = generate(GetParam());
  std::string priv_pem = key.to_pem();
  EXPECT_EQ(priv_pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << priv_pem;
  auto reloaded = PrivateKey::from_pem(priv_pem);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().to_string();
  EXPECT_EQ(reloaded->algorithm(), GetParam());
  EXPECT_EQ(reloaded->public_key().kid(), key.public_key().kid());
  EXPECT_EQ(reloaded->to_pem(), priv_pem);

  std::string pub_pem = key.public_key().to_pem();
  EXPECT_EQ(pub_pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u) << pub_pem;
  auto pub = PublicKey::from_pem(pub_pem);
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  EXPECT_EQ(pub->to_pem(), pub_pem);
  EXPECT_EQ(pub->kid(), key.public_key().kid());
  EXPECT_EQ(pub->spki_der(), key.public_key().spki_der());

  // Signatures made by the reloaded key verify under the original public key
  // and vice versa.
  Bytes msg = to_bytes("round trip");
  EXPECT_TRUE(key.public_key().verify(msg, reloaded->sign(msg)).ok());
  EXPECT_TRUE(pub->verify(msg, key.sign(msg)).ok());
}

TEST_P(KeysTest, SpkiDerRoundTripAndKid) {
  PrivateKey key = generate(GetParam());
  const Bytes& der = key.public_key().spki_der();
  EXPECT_EQ(der.size(), GetParam() == Algorithm::kES256 ? 91u : 44u);
  EXPECT_EQ(key.public_key().kid(), sha256(der));
  auto pub = PublicKey::from_spki_der(der);
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  EXPECT_EQ(pub->kid(), key.public_key().kid());

  Bytes trailing = der;
  trailing.push_back(0);
  EXPECT_EQ(PublicKey::from_spki_der(trailing).status().code(), ErrorCode::kMalformed);
  Bytes truncated(der.begin(), der.end() - 1);
  EXPECT_EQ(PublicKey::from_spki_der(truncated).status().code(), ErrorCode::kMalformed);
  EXPECT_EQ(PublicKey::from_spki_der({}).status().code(), ErrorCode::kMalformed);
}

TEST_P(KeysTest, ConcurrentVerify) {
  PrivateKey key = generate(GetParam());
  const PublicKey pub = key.public_key();
  std::vector<Bytes> msgs;
  std::vector<Bytes> sigs;
  for (int i = 0; i < 32; ++i) {
    msgs.push_back(to_bytes("message " + std::to_string(i)));
    sigs.push_back(key.sign(msgs.back()));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        for (size_t i = 0; i < msgs.size(); ++i) {
          bool good = pub.verify(msgs[i], sigs[i]).ok();
          bool wrong = pub.verify(msgs[(i + 1) % msgs.size()], sigs[i]).ok();
          if (!good || wrong) failures++;
          // Signing concurrently with one shared key must work too.
          if (round == 0 && t % 2 == 0 && !pub.verify(msgs[i], key.sign(msgs[i])).ok()) failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(KeysEd25519, Deterministic) {
  PrivateKey key = generate(Algorithm::kEd25519);
  Bytes msg = to_bytes("same input, same signature");
  EXPECT_EQ(key.sign(msg), key.sign(msg));
}

TEST(KeysEd25519, Rfc8032TestVector1) {
  // RFC 8032 section 7.1, TEST 1 (empty message), wrapped as PKCS#8.
  const Bytes seed = *from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  Bytes pkcs8 = *from_hex("302e020100300506032b657004220420");
  pkcs8.insert(pkcs8.end(), seed.begin(), seed.end());
  std::string pem =
      "-----BEGIN PRIVATE KEY-----\n" + base64_encode(pkcs8) + "\n-----END PRIVATE KEY-----\n";
  auto key = PrivateKey::from_pem(pem);
  ASSERT_TRUE(key.ok()) << key.status().to_string();
  const Bytes& spki = key->public_key().spki_der();
  EXPECT_EQ(to_hex(ByteView(spki).last(32)),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  EXPECT_EQ(to_hex(key->sign({})),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
}

TEST(KeysEs256, SignaturesWithLeadingZeroScalarsVerify) {
  // About 1 in 128 signatures has r or s below 2^248: their DER form is
  // shorter and the raw form must be left-padded. Enough signatures make
  // hitting that path near certain.
  PrivateKey key = generate(Algorithm::kES256);
  int short_scalars = 0;
  for (int i = 0; i < 1500; ++i) {
    Bytes msg = to_bytes("m" + std::to_string(i));
    Bytes sig = key.sign(msg);
    if (sig[0] == 0 || sig[32] == 0) ++short_scalars;
    ASSERT_TRUE(key.public_key().verify(msg, sig).ok()) << i;
  }
  EXPECT_GT(short_scalars, 0);
}

// ---------------------------------------------------------------------------
// Interop with the openssl command line

struct CliKey {
  std::string priv_pem;
  std::string pub_pem;
  Bytes spki_der;
};

CliKey make_cli_key(const TempDir& dir, Algorithm alg) {
  if (alg == Algorithm::kEd25519) {
    run(dir, "openssl genpkey -algorithm ed25519 -out priv.pem");
  } else {
    run(dir,
        "openssl ecparam -name prime256v1 -genkey -noout | "
        "openssl pkcs8 -topk8 -nocrypt -out priv.pem");
  }
  run(dir, "openssl pkey -in priv.pem -pubout -out pub.pem");
  run(dir, "openssl pkey -pubin -in pub.pem -outform DER -out pub.der");
  return {read_text(dir.file("priv.pem")), read_text(dir.file("pub.pem")),
          read_file(dir.file("pub.der"))};
}

TEST_P(KeysTest, OpensslCliInterop) {
  TempDir dir;
  CliKey cli = make_cli_key(dir, GetParam());
  auto priv = PrivateKey::from_pem(cli.priv_pem);
  ASSERT_TRUE(priv.ok()) << priv.status().to_string();
  auto pub = PublicKey::from_pem(cli.pub_pem);
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  EXPECT_EQ(priv->algorithm(), GetParam());
  EXPECT_EQ(pub->algorithm(), GetParam());

  // kid = SHA-256 of `openssl pkey -pubin -outform DER`, hashed by openssl.
  EXPECT_EQ(pub->spki_der(), cli.spki_der);
  run(dir, "openssl dgst -sha256 -r pub.der > kid.txt");
  EXPECT_EQ(read_text(dir.file("kid.txt")).substr(0, 64), hex_of(pub->kid()));
  EXPECT_EQ(priv->public_key().kid(), pub->kid());
  // Our PEM writers produce what openssl produces.
  EXPECT_EQ(pub->to_pem(), cli.pub_pem);
  EXPECT_EQ(priv->to_pem(), cli.priv_pem);

  Bytes msg = to_bytes("interop message: device 7 temperature 36.6");
  write_file(dir.file("msg.bin"), msg);

  // custos signs, openssl verifies.
  Bytes sig = priv->sign(msg);
  if (GetParam() == Algorithm::kEd25519) {
    write_file(dir.file("sig.bin"), sig);
    EXPECT_TRUE(run(dir,
                    "openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin "
                    "-sigfile sig.bin"));
  } else {
    write_file(dir.file("sig.der"), raw_to_der(sig));
    EXPECT_TRUE(run(dir, "openssl dgst -sha256 -verify pub.pem -signature sig.der msg.bin"));
  }
  // A corrupted signature is refused by openssl too (sanity of the harness).
  Bytes bad = sig;
  bad[10] ^= 1;
  if (GetParam() == Algorithm::kEd25519) {
    write_file(dir.file("bad.bin"), bad);
    EXPECT_FALSE(run_quiet(dir,
                           "openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin "
                           "-sigfile bad.bin"));
  } else {
    write_file(dir.file("bad.der"), raw_to_der(bad));
    EXPECT_FALSE(run_quiet(dir, "openssl dgst -sha256 -verify pub.pem -signature bad.der msg.bin"));
  }

  // openssl signs, custos verifies.
  Bytes osig;
  if (GetParam() == Algorithm::kEd25519) {
    ASSERT_TRUE(run(dir, "openssl pkeyutl -sign -inkey priv.pem -rawin -in msg.bin -out osig.bin"));
    osig = read_file(dir.file("osig.bin"));
    EXPECT_EQ(osig, sig);  // Ed25519 is deterministic
  } else {
    ASSERT_TRUE(run(dir, "openssl dgst -sha256 -sign priv.pem -out osig.der msg.bin"));
    osig = der_to_raw(read_file(dir.file("osig.der")));
  }
  ASSERT_EQ(osig.size(), 64u);
  EXPECT_TRUE(pub->verify(msg, osig).ok());
  EXPECT_TRUE(priv->public_key().verify(msg, osig).ok());
  osig[5] ^= 0x20;
  EXPECT_EQ(pub->verify(msg, osig).code(), ErrorCode::kBadSignature);
}

TEST_P(KeysTest, OpensslReadsOurKeys) {
  TempDir dir;
  PrivateKey key = generate(GetParam());
  std::string pem = key.to_pem();
  write_file(dir.file("ours.pem"), as_view(pem));
  ASSERT_TRUE(run(dir, "openssl pkey -in ours.pem -pubout -out ours.pub.pem"));
  EXPECT_EQ(read_text(dir.file("ours.pub.pem")), key.public_key().to_pem());
}

// ---------------------------------------------------------------------------
// Refusals

void expect_refused(const Status& s, ErrorCode code, const std::string& needle) {
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.to_string();
}

TEST(KeysRefusal, RsaKeys) {
  TempDir dir;
  ASSERT_TRUE(run(dir,
                  "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa.pem && "
                  "openssl pkey -in rsa.pem -pubout -out rsa.pub.pem && "
                  "openssl rsa -in rsa.pem -traditional -out rsa.trad.pem && "
                  "openssl rsa -in rsa.pem -RSAPublicKey_out -out rsa.pkcs1.pub.pem"));
  expect_refused(PrivateKey::from_pem(read_text(dir.file("rsa.pem"))).status(),
                 ErrorCode::kInvalidArgument, "RSA");
  expect_refused(PublicKey::from_pem(read_text(dir.file("rsa.pub.pem"))).status(),
                 ErrorCode::kInvalidArgument, "RSA");
  expect_refused(PrivateKey::from_pem(read_text(dir.file("rsa.trad.pem"))).status(),
                 ErrorCode::kInvalidArgument, "RSA");
  expect_refused(PublicKey::from_pem(read_text(dir.file("rsa.pkcs1.pub.pem"))).status(),
                 ErrorCode::kInvalidArgument, "RSA");
}

TEST(KeysRefusal, OtherCurves) {
  TempDir dir;
  for (const char* curve : {"secp384r1", "secp256k1", "secp521r1"}) {
    ASSERT_TRUE(run(dir, std::string("openssl ecparam -name ") + curve +
                             " -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out ec.pem && "
                             "openssl pkey -in ec.pem -pubout -out ec.pub.pem"));
    expect_refused(PrivateKey::from_pem(read_text(dir.file("ec.pem"))).status(),
                   ErrorCode::kInvalidArgument, curve);
    expect_refused(PublicKey::from_pem(read_text(dir.file("ec.pub.pem"))).status(),
                   ErrorCode::kInvalidArgument, curve);
  }
  ASSERT_TRUE(run(dir,
                  "openssl genpkey -algorithm ed448 -out ed448.pem && "
                  "openssl pkey -in ed448.pem -pubout -out ed448.pub.pem"));
  expect_refused(PrivateKey::from_pem(read_text(dir.file("ed448.pem"))).status(),
                 ErrorCode::kInvalidArgument, "ED448");
  expect_refused(PublicKey::from_pem(read_text(dir.file("ed448.pub.pem"))).status(),
                 ErrorCode::kInvalidArgument, "ED448");
}

TEST(KeysRefusal, NonCanonicalP256Forms) {
  TempDir dir;
  ASSERT_TRUE(run(dir,
                  "openssl ecparam -name prime256v1 -genkey -noout -out sec1.pem && "
                  "openssl ec -in sec1.pem -pubout -conv_form compressed -out compressed.pem && "
                  "openssl ec -in sec1.pem -pubout -param_enc explicit -out explicit.pem"));
  // SEC1 "EC PRIVATE KEY" is not PKCS#8: say how to convert it.
  expect_refused(PrivateKey::from_pem(read_text(dir.file("sec1.pem"))).status(),
                 ErrorCode::kInvalidArgument, "pkcs8");
  // Another encoding of the same key would give it another kid.
  EXPECT_FALSE(PublicKey::from_pem(read_text(dir.file("compressed.pem"))).ok());
  EXPECT_FALSE(PublicKey::from_pem(read_text(dir.file("explicit.pem"))).ok());
}

TEST(KeysRefusal, GarbagePem) {
  for (std::string garbage :
       {std::string(), std::string("hello"), std::string("-----BEGIN PUBLIC KEY-----\n"),
        std::string("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
        std::string("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
        std::string("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        std::string(100000, 'A'), std::string("\0\0\0", 3)}) {
    auto pub = PublicKey::from_pem(garbage);
    EXPECT_FALSE(pub.ok()) << garbage.substr(0, 60);
    if (!pub.ok()) {
      EXPECT_TRUE(pub.status().code() == ErrorCode::kMalformed ||
                  pub.status().code() == ErrorCode::kInvalidArgument);
    }
    auto priv = PrivateKey::from_pem(garbage);
    EXPECT_FALSE(priv.ok()) << garbage.substr(0, 60);
  }
  EXPECT_EQ(PublicKey::from_pem("hello").status().code(), ErrorCode::kMalformed);
  EXPECT_EQ(PrivateKey::from_pem("hello").status().code(), ErrorCode::kMalformed);
}

TEST(KeysRefusal, PrivateGivenAsPublicAndViceVersa) {
  PrivateKey key = generate(Algorithm::kEd25519);
  expect_refused(PublicKey::from_pem(key.to_pem()).status(), ErrorCode::kInvalidArgument,
                 "private key");
  expect_refused(PrivateKey::from_pem(key.public_key().to_pem()).status(),
                 ErrorCode::kInvalidArgument, "public key");
}

TEST(KeysRefusal, OtherPemLabelsAndMultipleBlocks) {
  PrivateKey key = generate(Algorithm::kES256);
  std::string pub = key.public_key().to_pem();
  std::string cert = pub;
  for (std::string from : {"BEGIN PUBLIC KEY", "END PUBLIC KEY"}) {
    std::string to = from.substr(0, 4) == "BEGI" ? "BEGIN CERTIFICATE" : "END CERTIFICATE";
    cert.replace(cert.find(from), from.size(), to);
  }
  expect_refused(PublicKey::from_pem(cert).status(), ErrorCode::kInvalidArgument, "CERTIFICATE");
  expect_refused(PublicKey::from_pem(pub + pub).status(), ErrorCode::kInvalidArgument,
                 "more than one");
  // Leading commentary is tolerated, as openssl does.
  EXPECT_TRUE(PublicKey::from_pem("device 7 key\n" + pub).ok());
}

TEST(KeysRefusal, EncryptedPrivateKey) {
  TempDir dir;
  ASSERT_TRUE(run(dir,
                  "openssl genpkey -algorithm ed25519 -out plain.pem && "
                  "openssl pkcs8 -topk8 -in plain.pem -passout pass:secret -out enc.pem"));
  expect_refused(PrivateKey::from_pem(read_text(dir.file("enc.pem"))).status(),
                 ErrorCode::kInvalidArgument, "encrypted");
}

}  // namespace
}  // namespace custos::crypto
