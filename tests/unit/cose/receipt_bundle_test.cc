// Consortium receipt bundles: [+ COSE_Sign1], one RFC 9942 receipt per node,
// accepted only with a quorum of distinct node signatures over one root.
// Every refusal is checked for its code and for the reason it names.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "codec/cbor.h"
#include "core/quorum.h"
#include "cose/receipt.h"
#include "cose/sign1.h"
#include "crypto/keys.h"
#include "merkle/merkle.h"

namespace custos::cose {
namespace {

using crypto::Algorithm;
using crypto::PrivateKey;
using crypto::PublicKey;

constexpr size_t kNodes = 4;  // n = 3f + 1 with f = 1: quorum 3
constexpr size_t kLeaves = 7;
constexpr size_t kLeaf = 5;  // the entry whose receipts the tests bundle

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Key generation is slow next to signing: one consortium for all tests,
// mixed algorithms as a real consortium may be.
const std::vector<PrivateKey>& node_keys() {
  static const std::vector<PrivateKey> kKeys = [] {
    std::vector<PrivateKey> keys;
    for (size_t i = 0; i < kNodes; ++i) {
      keys.push_back(*PrivateKey::generate(i % 2 ? Algorithm::kES256 : Algorithm::kEd25519));
    }
    return keys;
  }();
  return kKeys;
}

std::vector<PublicKey> public_keys() {
  std::vector<PublicKey> out;
  for (const PrivateKey& k : node_keys()) out.push_back(k.public_key());
  return out;
}

const PrivateKey& outsider() {
  static const PrivateKey kKey = *PrivateKey::generate(Algorithm::kEd25519);
  return kKey;
}

Bytes entry(size_t i) {
  return to_bytes("entry " + std::to_string(i));
}

// The log D[0:size] of entry(0..size-1), or a fork whose entry `forked` differs.
merkle::MemoryTree tree_of(size_t size, std::optional<size_t> forked = std::nullopt) {
  merkle::MemoryTree tree;
  for (size_t i = 0; i < size; ++i) {
    tree.append(i == forked ? to_bytes("forked " + std::to_string(i)) : entry(i));
  }
  return tree;
}

// The receipt `key` makes for leaf kLeaf of `tree` (as a node does: sign the
// root once, attach the leaf's inclusion proof).
Bytes receipt_by(const PrivateKey& key, merkle::MemoryTree& tree) {
  ReceiptHeader h;
  h.alg = key.algorithm();
  h.kid = key.public_key().kid();
  h.issuer = "node";
  h.issued_at_s = 1795000000;
  h.tree_size = tree.size();
  Bytes protected_bytes = receipt_protected_bytes(h);
  Bytes signature = sign_root(key, protected_bytes, tree.root());
  auto path = merkle::inclusion_proof(tree, kLeaf, tree.size());
  EXPECT_TRUE(path.ok()) << path.status().to_string();
  return encode_receipt(protected_bytes, InclusionProof{tree.size(), kLeaf, *path}, signature);
}

// Receipts of the honest log by the given nodes, in that order.
std::vector<Bytes> receipts_by(const std::vector<size_t>& nodes) {
  merkle::MemoryTree tree = tree_of(kLeaves);
  std::vector<Bytes> out;
  for (size_t n : nodes) out.push_back(receipt_by(node_keys()[n], tree));
  return out;
}

std::vector<Receipt> parsed_bundle(const std::vector<Bytes>& receipts) {
  auto parsed = parse_receipt_bundle(encode_receipt_bundle(receipts));
  EXPECT_TRUE(parsed.ok()) << parsed.status().to_string();
  return parsed.ok() ? std::move(parsed).value() : std::vector<Receipt>{};
}

Status verify(const std::vector<Bytes>& receipts) {
  return verify_receipt_bundle(parsed_bundle(receipts), entry(kLeaf), public_keys(),
                               quorum_size(kNodes));
}

ReceiptQuorum check(const std::vector<Bytes>& receipts) {
  auto c = check_receipt_bundle(parsed_bundle(receipts), entry(kLeaf), public_keys(),
                                quorum_size(kNodes));
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? std::move(c).value() : ReceiptQuorum{};
}

// ---------------------------------------------------------------------------
// Quorum

TEST(ReceiptBundle, QuorumSizeIsThreeOfFour) {
  EXPECT_EQ(quorum_size(kNodes), 3u);
}

TEST(ReceiptBundle, ThreeOfFourVerifies) {
  const std::vector<Bytes> receipts = receipts_by({0, 1, 3});
  Status s = verify(receipts);
  EXPECT_TRUE(s.ok()) << s.to_string();
  ReceiptQuorum q = check(receipts);
  EXPECT_TRUE(q.has_quorum());
  ASSERT_EQ(q.signers.size(), 3u);
  EXPECT_EQ(q.signers[0].node, 0u);
  EXPECT_EQ(q.signers[1].node, 1u);
  EXPECT_EQ(q.signers[2].node, 3u);
  EXPECT_EQ(q.signers[2].element, 2u);
  EXPECT_EQ(q.tree_size, kLeaves);
  EXPECT_EQ(q.leaf_index, kLeaf);
  EXPECT_EQ(q.root, tree_of(kLeaves).root());
  EXPECT_TRUE(q.rejected.empty());
}

TEST(ReceiptBundle, AllFourInAnyOrderVerify) {
  EXPECT_TRUE(verify(receipts_by({0, 1, 2, 3})).ok());
  EXPECT_TRUE(verify(receipts_by({3, 1, 0, 2})).ok()) << "element order is not significant";
}

TEST(ReceiptBundle, TwoOfFourRefusedWithCounts) {
  Status s = verify(receipts_by({0, 2}));
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_TRUE(contains(s.message(), "2 of 3 required")) << s.message();
  EXPECT_TRUE(contains(s.message(), "consortium of 4 nodes")) << s.message();
  EXPECT_TRUE(contains(s.message(), "node #0 node #2")) << s.message();
}

TEST(ReceiptBundle, DuplicateNodeCountedOnce) {
  Status s = verify(receipts_by({0, 1, 1}));
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_TRUE(contains(s.message(), "2 of 3 required")) << s.message();
  EXPECT_TRUE(
      contains(s.message(), "element 2 (node #1): duplicate node: already counted from element 1"))
      << s.message();
  // With a quorum besides, the duplicate is reported but does no harm.
  ReceiptQuorum q = check(receipts_by({0, 1, 1, 2}));
  EXPECT_TRUE(q.has_quorum());
  EXPECT_EQ(q.signers.size(), 3u);
  ASSERT_EQ(q.rejected.size(), 1u);
  EXPECT_EQ(q.rejected[0].element, 2u);
  EXPECT_TRUE(contains(q.rejected[0].reason, "duplicate node"));
}

TEST(ReceiptBundle, UnknownKidRefused) {
  merkle::MemoryTree tree = tree_of(kLeaves);
  std::vector<Bytes> receipts = receipts_by({0, 1});
  receipts.push_back(receipt_by(outsider(), tree));
  Status s = verify(receipts);
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_TRUE(contains(s.message(), "2 of 3 required")) << s.message();
  EXPECT_TRUE(
      contains(s.message(), "element 2: unknown kid " + to_hex(outsider().public_key().kid())))
      << s.message();
}

TEST(ReceiptBundle, TamperedSignatureRefused) {
  std::vector<Bytes> receipts = receipts_by({0, 1, 2});
  receipts[1].back() ^= 0x01;  // last byte of the signature
  Status s = verify(receipts);
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_TRUE(contains(s.message(), "2 of 3 required")) << s.message();
  EXPECT_TRUE(contains(s.message(),
                       "element 1 (node #1): bad signature: receipt signature does "
                       "not verify"))
      << s.message();
}

TEST(ReceiptBundle, ElementForDifferentTreeSizeNotCounted) {
  std::vector<Bytes> receipts = receipts_by({0, 1});
  merkle::MemoryTree later = tree_of(kLeaves + 1);
  receipts.push_back(receipt_by(node_keys()[2], later));
  // That element verifies on its own: a node signs every block's root.
  auto alone = parse_receipt(receipts[2]);
  ASSERT_TRUE(alone.ok());
  EXPECT_TRUE(verify_receipt(*alone, entry(kLeaf), node_keys()[2].public_key()).ok());
  Status s = verify(receipts);
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_TRUE(contains(s.message(), "2 of 3 required")) << s.message();
  EXPECT_TRUE(contains(s.message(),
                       "element 2 (node #2): different tree size/root: signs tree "
                       "size 8"))
      << s.message();
  EXPECT_TRUE(contains(s.message(), "the counted signatures tree size 7")) << s.message();
}

TEST(ReceiptBundle, ForkedRootAtSameTreeSizeNotCounted) {
  // A byzantine node signs a log that differs in another entry: same size,
  // same proof shape, different root.
  std::vector<Bytes> receipts = receipts_by({0, 1});
  merkle::MemoryTree fork = tree_of(kLeaves, /*forked=*/0);
  receipts.push_back(receipt_by(node_keys()[3], fork));
  ReceiptQuorum q = check(receipts);
  EXPECT_FALSE(q.has_quorum());
  ASSERT_EQ(q.rejected.size(), 1u);
  EXPECT_EQ(q.rejected[0].node, 3u);
  EXPECT_TRUE(contains(q.rejected[0].reason, "different tree size/root: signs tree size 7"))
      << q.rejected[0].reason;
}

TEST(ReceiptBundle, MajorityTreeWinsOverAnEarlierMinority) {
  merkle::MemoryTree later = tree_of(kLeaves + 1);
  std::vector<Bytes> receipts{receipt_by(node_keys()[3], later)};
  for (Bytes& r : receipts_by({0, 1, 2})) receipts.push_back(std::move(r));
  ReceiptQuorum q = check(receipts);
  EXPECT_TRUE(q.has_quorum());
  EXPECT_EQ(q.tree_size, kLeaves);
  ASSERT_EQ(q.rejected.size(), 1u);
  EXPECT_EQ(q.rejected[0].element, 0u);
}

TEST(ReceiptBundle, ProofMismatchRefused) {
  std::vector<Bytes> receipts = receipts_by({0, 1});
  // Node 2's signature with a proof of the wrong shape (one hash too many).
  merkle::MemoryTree tree = tree_of(kLeaves);
  ReceiptHeader h;
  h.alg = node_keys()[2].algorithm();
  h.kid = node_keys()[2].public_key().kid();
  h.issuer = "node";
  h.tree_size = kLeaves;
  Bytes prot = receipt_protected_bytes(h);
  auto path = merkle::inclusion_proof(tree, kLeaf, kLeaves);
  ASSERT_TRUE(path.ok());
  path->push_back(Hash256{});
  receipts.push_back(encode_receipt(prot, InclusionProof{kLeaves, kLeaf, *path},
                                    sign_root(node_keys()[2], prot, tree.root())));
  Status s = verify(receipts);
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_TRUE(contains(s.message(), "element 2 (node #2): proof mismatch: receipt inclusion proof"))
      << s.message();
}

TEST(ReceiptBundle, WrongStatementRefusedByEveryElement) {
  auto receipts = parsed_bundle(receipts_by({0, 1, 2, 3}));
  auto q = check_receipt_bundle(receipts, entry(kLeaf - 1), public_keys(), 3);
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->signers.empty());
  EXPECT_EQ(q->rejected.size(), 4u);
  Status s = receipt_quorum_status(*q, {"alpha", "beta", "gamma", "delta"});
  EXPECT_EQ(s.code(), ErrorCode::kBadSignature);
  EXPECT_TRUE(contains(s.message(), "0 of 3 required")) << s.message();
  EXPECT_TRUE(contains(s.message(), "element 3 (delta): bad signature")) << s.message();
}

TEST(ReceiptBundle, NamesReplaceNodeNumbers) {
  auto q = check_receipt_bundle(parsed_bundle(receipts_by({1, 2})), entry(kLeaf), public_keys(), 3);
  ASSERT_TRUE(q.ok());
  Status s = receipt_quorum_status(*q, {"alpha", "beta", "gamma", "delta"});
  EXPECT_TRUE(contains(s.message(), "counted for tree size 7: beta gamma")) << s.message();
}

TEST(ReceiptBundle, ArgumentErrors) {
  auto receipts = parsed_bundle(receipts_by({0, 1, 2}));
  auto zero = check_receipt_bundle(receipts, entry(kLeaf), public_keys(), 0);
  EXPECT_EQ(zero.status().code(), ErrorCode::kInvalidArgument) << "a quorum of 0 accepts anything";
  auto above = check_receipt_bundle(receipts, entry(kLeaf), public_keys(), kNodes + 1);
  EXPECT_EQ(above.status().code(), ErrorCode::kInvalidArgument);
  auto empty = check_receipt_bundle({}, entry(kLeaf), public_keys(), 3);
  EXPECT_EQ(empty.status().code(), ErrorCode::kMalformed);
  EXPECT_EQ(verify_receipt_bundle({}, entry(kLeaf), public_keys(), 3).code(),
            ErrorCode::kMalformed);
  std::vector<Receipt> many(kReceiptBundleEntriesMax + 1, receipts[0]);
  EXPECT_EQ(check_receipt_bundle(many, entry(kLeaf), public_keys(), 3).status().code(),
            ErrorCode::kTooLarge);
}

// ---------------------------------------------------------------------------
// Encoding and parsing

TEST(ReceiptBundle, EncodingIsArrayOfUnchangedReceipts) {
  const std::vector<Bytes> receipts = receipts_by({0, 1, 2});
  const Bytes bundle = encode_receipt_bundle(receipts);
  auto decoded = cbor::decode(bundle);  // deterministic, like every element
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  ASSERT_TRUE(decoded->is(cbor::Type::kArray));
  ASSERT_EQ(decoded->as_array().size(), 3u);
  EXPECT_EQ(bundle[0], 0x83);
  size_t offset = 1;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(decoded->as_array()[i].is(cbor::Type::kTag));
    EXPECT_EQ(Bytes(bundle.begin() + offset, bundle.begin() + offset + receipts[i].size()),
              receipts[i]);
    offset += receipts[i].size();
  }
  EXPECT_EQ(offset, bundle.size());
  auto parsed = parse_receipt_bundle(bundle);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[2].header.kid, node_keys()[2].public_key().kid());
}

TEST(ReceiptBundle, LongBundleUsesShortestHead) {
  std::vector<Bytes> receipts(30, receipts_by({0})[0]);
  const Bytes bundle = encode_receipt_bundle(receipts);
  EXPECT_EQ(bundle[0], 0x98);
  EXPECT_EQ(bundle[1], 30);
  auto parsed = parse_receipt_bundle(bundle);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->size(), 30u);
}

TEST(ReceiptBundle, SingleReceiptIsABundleOfOne) {
  const Bytes single = receipts_by({2})[0];
  auto parsed = parse_receipt_bundle(single);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  ASSERT_EQ(parsed->size(), 1u);
  // Verifies with a one-node consortium, and as one node of four.
  std::vector<PublicKey> one{node_keys()[2].public_key()};
  EXPECT_TRUE(verify_receipt_bundle(*parsed, entry(kLeaf), one, quorum_size(1)).ok());
  auto q = check_receipt_bundle(*parsed, entry(kLeaf), public_keys(), 1);
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->has_quorum());
  Status s = verify_receipt_bundle(*parsed, entry(kLeaf), public_keys(), 3);
  EXPECT_TRUE(contains(s.message(), "1 of 3 required")) << s.message();

  // Untagged COSE_Sign1 (RFC 9052 allows it): still one receipt.
  ASSERT_EQ(single[0], 0xd2);
  const Bytes untagged(single.begin() + 1, single.end());
  auto u = parse_receipt_bundle(untagged);
  ASSERT_TRUE(u.ok()) << u.status().to_string();
  EXPECT_EQ(u->size(), 1u);
  EXPECT_TRUE(verify_receipt_bundle(*u, entry(kLeaf), one, 1).ok());
}

struct Refusal {
  std::string name;
  Bytes bytes;
  ErrorCode code;
  std::string message_part;
};

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(ReceiptBundle, MalformedInputGivesClearErrors) {
  const Bytes r = receipts_by({0})[0];
  const Bytes untagged(r.begin() + 1, r.end());
  Bytes element_too_large = r;
  std::vector<Refusal> cases = {
      {"empty input", {}, ErrorCode::kMalformed, "receipt bundle is empty (0 bytes)"},
      {"a map", {0xa0}, ErrorCode::kMalformed, "got a map"},
      {"an integer", {0x01}, ErrorCode::kMalformed, "got an unsigned integer"},
      {"a text string",
       to_bytes("\x63"
                "abc"),
       ErrorCode::kMalformed, "got a text string"},
      {"empty array", {0x80}, ErrorCode::kMalformed, "no receipts (empty array)"},
      {"array of integers",
       {0x82, 0x01, 0x02},
       ErrorCode::kMalformed,
       "element 0: must be a tagged (18) COSE_Sign1 receipt, got an unsigned integer"},
      {"untagged element", concat({{0x81}, untagged}), ErrorCode::kMalformed,
       "element 0: must be a tagged (18) COSE_Sign1 receipt, got an array"},
      {"other tag", concat({{0x81, 0xd1}, untagged}), ErrorCode::kMalformed, "got a tag"},
      {"second element a bstr", concat({{0x82}, r, {0x41, 0x00}}), ErrorCode::kMalformed,
       "element 1: must be a tagged (18) COSE_Sign1 receipt, got a bstr"},
      {"tagged non-receipt", {0x81, 0xd2, 0x01}, ErrorCode::kMalformed, "element 0: "},
      {"indefinite array", concat({{0x9f}, r, {0xff}}), ErrorCode::kMalformed,
       "indefinite-length arrays are not allowed"},
      {"non-shortest head", concat({{0x98, 0x01}, r}), ErrorCode::kMalformed,
       "array length 1 is not in its shortest form"},
      {"reserved head", {0x9c}, ErrorCode::kMalformed, "reserved additional information 28"},
      {"truncated head", {0x99, 0x01}, ErrorCode::kMalformed, "array head is truncated"},
      {"missing element", concat({{0x83}, r, r}), ErrorCode::kMalformed,
       "the array announces 3 elements but the input ends after 2"},
      {"truncated element", concat({{0x81}, Bytes(r.begin(), r.end() - 5)}), ErrorCode::kMalformed,
       "receipt bundle element 0: "},
      {"trailing bytes", concat({{0x81}, r, {0x00, 0x00}}), ErrorCode::kMalformed,
       "2 trailing bytes after its 1 element"},
      {"too many elements", concat({{0x99, 0x01, 0x01}, r}), ErrorCode::kTooLarge,
       "257 elements; the limit is 256"},
      {"huge count",
       {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
       ErrorCode::kTooLarge,
       "the limit is 256"},
      {"too large", Bytes(kReceiptBundleBytesMax + 1, 0x80), ErrorCode::kTooLarge,
       "receipt bundle is 1048577 bytes; the limit is 1048576"},
  };
  for (const Refusal& c : cases) {
    auto parsed = parse_receipt_bundle(c.bytes);
    ASSERT_FALSE(parsed.ok()) << c.name;
    EXPECT_EQ(parsed.status().code(), c.code) << c.name << ": " << parsed.status().to_string();
    EXPECT_TRUE(contains(parsed.status().message(), c.message_part))
        << c.name << ": " << parsed.status().message();
  }
}

TEST(ReceiptBundle, OversizedElementRefused) {
  // A well-formed tagged COSE_Sign1 above the single-receipt limit.
  Sign1 big;
  big.protected_bytes = {0xa0};
  big.unprotected = cbor::Value::map({});
  big.payload = Bytes(limits::kReceiptBytesMax, 0x00);
  big.signature = Bytes(64, 0x00);
  const Bytes bundle = concat({{0x82}, receipts_by({0})[0], encode_sign1(big)});
  auto parsed = parse_receipt_bundle(bundle);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), ErrorCode::kTooLarge) << parsed.status().to_string();
  EXPECT_TRUE(contains(parsed.status().message(), "receipt bundle element 1: "))
      << parsed.status().message();
}

// ---------------------------------------------------------------------------
// The example of docs/formats.md section 6: three of four Ed25519 nodes
// (32-byte seeds 11..11, 22..22, 33..33, 44..44) sign leaf 1 of a 4-entry
// log whose entries are "entry 0", the section 2 statement, "entry 2" and
// "entry 3". Keeps the documented bytes verifiable.

constexpr const char* kDocStatementHex =
    "d284585ba5013203706170706c69636174696f6e2f63626f72045820646d6be49d9f0048f94f6774"
    "9eca35156eed4f7a7be18e4fc4a94bfd44e300b00fa3016770756d702d3137026a696e667573696f"
    "6e2d31061a6afd86c03a0001000001a0581aa2656576656e7465737461727469726174655f6d6c5f"
    "68f94a4058402f54814526a250dbdeb882b43e5e7b33d509a83a547fa08912d49df8bb89124cd09a"
    "d3968a45407670b94ecf4ad0dff7757f55cf72452d46aa2b2cd2c9f69e03";

constexpr const char* kDocBundleHex =
    "83d2845840a50132045820503d8ee46d581c649966569ae095e27041de83322e8e0480e5539e00d2"
    "d5d8740fa201666e6f64652d30061a6afd86c019018b013a0001000104a119018ca1208158488304"
    "01825820773885a613489e24ce2cf76199d6a423f042e4bbf12d7eecee912ef276c657015820ddbd"
    "e80fccdeb3198ef69b8e1f0934fbce296c6babfb738574a4f62972266793f6584052a1b44f6b635a"
    "263831126f17b8167e248dd346173391b6c934acef78eb222056db6a5210be187060d20b79fd744b"
    "95ee0478fcb3f64ea5c4bba1c80f082709d2845840a50132045820744f36cca67eb1912cb282e08e"
    "86bd2fe0d09004a28cf6e7c6bd56cdd6bf65aa0fa201666e6f64652d31061a6afd86c019018b013a"
    "0001000104a119018ca120815848830401825820773885a613489e24ce2cf76199d6a423f042e4bb"
    "f12d7eecee912ef276c657015820ddbde80fccdeb3198ef69b8e1f0934fbce296c6babfb738574a4"
    "f62972266793f658406df4fd6315a6032e7b1f25f41dc5d25af3c950de8883f6d98ef201b2c89463"
    "da8abcbfb4b29442997c508219f8d598439759e9c19289ade8933208d4ccdae400d2845840a50132"
    "0458203532fb2b134488a2a18f2a07cd6db85b4c1b808ddb10972f0ad5526856177bd40fa201666e"
    "6f64652d32061a6afd86c019018b013a0001000104a119018ca120815848830401825820773885a6"
    "13489e24ce2cf76199d6a423f042e4bbf12d7eecee912ef276c657015820ddbde80fccdeb3198ef6"
    "9b8e1f0934fbce296c6babfb738574a4f62972266793f658409feba00b2156e91445c7259edf4de2"
    "9b03282ae5debc1c7aa525585e0c4ce0ebc1d05f0e6b3fef3bfd5f9c18cef1d614f74dbbbc107a28"
    "b4eb7be230c28f0c0f";

PublicKey seeded_ed25519(uint8_t byte) {
  Bytes pkcs8 = *from_hex("302e020100300506032b657004220420");
  pkcs8.insert(pkcs8.end(), 32, byte);
  auto key = PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\n" + base64_encode(pkcs8) +
                                  "\n-----END PRIVATE KEY-----\n");
  EXPECT_TRUE(key.ok()) << key.status().to_string();
  return key->public_key();
}

TEST(ReceiptBundle, DocumentedExampleVerifies) {
  const Bytes statement = *from_hex(kDocStatementHex);
  const Bytes bundle = *from_hex(kDocBundleHex);
  ASSERT_EQ(bundle.size(), 649u);
  std::vector<PublicKey> keys;
  for (uint8_t b : {0x11, 0x22, 0x33, 0x44}) keys.push_back(seeded_ed25519(b));
  auto receipts = parse_receipt_bundle(bundle);
  ASSERT_TRUE(receipts.ok()) << receipts.status().to_string();
  ASSERT_EQ(receipts->size(), 3u);
  auto q = check_receipt_bundle(*receipts, statement, keys, quorum_size(keys.size()));
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  EXPECT_TRUE(q->has_quorum());
  EXPECT_EQ(q->tree_size, 4u);
  EXPECT_EQ(q->leaf_index, 1u);
  EXPECT_EQ(to_hex(q->root), "7326f7c6366c6e7ed94d5749e43da428928da61acd5e13981fafe8d114fdcf79");
  EXPECT_EQ((*receipts)[2].header.issuer, "node-2");
  // Re-encoding the three receipts gives back the documented bytes.
  std::vector<Bytes> elements;
  size_t offset = 1;
  for (size_t i = 0; i < 3; ++i) {
    elements.emplace_back(bundle.begin() + offset, bundle.begin() + offset + 216);
    offset += 216;
  }
  EXPECT_EQ(encode_receipt_bundle(elements), bundle);
  // Two of the three are not enough.
  receipts->pop_back();
  EXPECT_TRUE(
      contains(verify_receipt_bundle(*receipts, statement, keys, 3).message(), "2 of 3 required"));
}

// ---------------------------------------------------------------------------
// Properties

// Any multiset of honest elements, tampered or not, verifies exactly when
// it holds untampered elements from at least a quorum of distinct nodes.
RC_GTEST_PROP(ReceiptBundleProperty, QuorumOfDistinctValidNodes, ()) {
  static const std::vector<Bytes> kHonest = receipts_by({0, 1, 2, 3});
  const size_t count = *rc::gen::inRange<size_t>(1, 13);
  const auto picks = *rc::gen::container<std::vector<std::pair<size_t, bool>>>(
      count, rc::gen::pair(rc::gen::inRange<size_t>(0, kNodes), rc::gen::arbitrary<bool>()));
  std::vector<Bytes> receipts;
  std::vector<bool> valid_node(kNodes, false);
  for (const auto& [node, tamper] : picks) {
    Bytes r = kHonest[node];
    if (tamper) r.back() ^= 0x80;
    if (!tamper) valid_node[node] = true;
    receipts.push_back(std::move(r));
  }
  const size_t distinct = std::count(valid_node.begin(), valid_node.end(), true);
  auto parsed = parse_receipt_bundle(encode_receipt_bundle(receipts));
  RC_ASSERT(parsed.ok());
  auto q = check_receipt_bundle(*parsed, entry(kLeaf), public_keys(), quorum_size(kNodes));
  RC_ASSERT(q.ok());
  RC_ASSERT(q->signers.size() == distinct);
  RC_ASSERT(q->signers.size() + q->rejected.size() == receipts.size());
  Status s = receipt_quorum_status(*q);
  RC_ASSERT(s.ok() == (distinct >= quorum_size(kNodes)));
  if (!s.ok()) {
    RC_ASSERT(contains(s.message(), std::to_string(distinct) + " of 3 required"));
  }
}

// Arbitrary bytes, and single-byte corruptions of a valid bundle, never
// crash the parser; a corrupted bundle never gains signers.
RC_GTEST_PROP(ReceiptBundleProperty, CorruptionNeverCrashesOrAddsSigners, ()) {
  static const Bytes kBundle = encode_receipt_bundle(receipts_by({0, 1, 2}));
  const auto junk = *rc::gen::container<Bytes>(rc::gen::arbitrary<uint8_t>());
  (void)parse_receipt_bundle(junk);
  Bytes bad = kBundle;
  const size_t at = *rc::gen::inRange<size_t>(0, bad.size());
  bad[at] ^= *rc::gen::inRange<int>(1, 256);
  auto parsed = parse_receipt_bundle(bad);
  if (!parsed.ok()) {
    RC_ASSERT(!parsed.status().message().empty());
    return;
  }
  auto q = check_receipt_bundle(*parsed, entry(kLeaf), public_keys(), quorum_size(kNodes));
  RC_ASSERT(q.ok());
  RC_ASSERT(q->signers.size() <= 3u);
}

}  // namespace
}  // namespace custos::cose
