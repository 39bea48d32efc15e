// Micro-benchmarks of the per-statement work: signature verification (the
// physical limit), hashing, CBOR and COSE parsing, Merkle appends and proofs.
// `scripts/bench.sh` runs them; docs/performance.md records the figures.
#include <benchmark/benchmark.h>

#include "codec/cbor.h"
#include "cose/receipt.h"
#include "cose/statement.h"
#include "crypto/hash.h"
#include "merkle/merkle.h"

namespace custos {
namespace {

Bytes sample_payload() {
  cbor::Map m;
  m.emplace_back(cbor::text("event"), cbor::text("rate-change"));
  m.emplace_back(cbor::text("device"), cbor::text("pump-17"));
  m.emplace_back(cbor::text("rate_ml_h"), cbor::Value::float64(12.5));
  m.emplace_back(cbor::text("pad"), cbor::Value::bytes(Bytes(100, 0x5a)));
  return cbor::encode(cbor::Value::map(std::move(m)));
}

Bytes sample_statement(const crypto::PrivateKey& key) {
  cose::StatementHeader h;
  h.content_type = "application/cbor";
  h.issuer = "pump-17";
  h.subject = "infusion-1";
  h.issued_at_s = 1795000000;
  h.sequence = 42;
  return cose::sign_statement(key, h, sample_payload());
}

void BM_Verify(benchmark::State& state, crypto::Algorithm alg) {
  auto key = crypto::PrivateKey::generate(alg).value();
  auto st = cose::parse_statement(sample_statement(key)).value();
  for (auto _ : state) benchmark::DoNotOptimize(cose::verify_statement(st, key.public_key()).ok());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_Verify, Ed25519, crypto::Algorithm::kEd25519);
BENCHMARK_CAPTURE(BM_Verify, ES256, crypto::Algorithm::kES256);

void BM_Sign(benchmark::State& state, crypto::Algorithm alg) {
  auto key = crypto::PrivateKey::generate(alg).value();
  Bytes payload = sample_payload();
  cose::StatementHeader h{
      alg, crypto::cose_algorithm(alg), {}, "application/cbor", "pump-17", "x", 1, 1};
  for (auto _ : state) benchmark::DoNotOptimize(cose::sign_statement(key, h, payload));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_Sign, Ed25519, crypto::Algorithm::kEd25519);
BENCHMARK_CAPTURE(BM_Sign, ES256, crypto::Algorithm::kES256);

void BM_ParseStatement(benchmark::State& state) {
  auto key = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519).value();
  Bytes bytes = sample_statement(key);
  for (auto _ : state) benchmark::DoNotOptimize(cose::parse_statement(bytes).ok());
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}
BENCHMARK(BM_ParseStatement);

void BM_Sha256Statement(benchmark::State& state) {
  Bytes data(static_cast<size_t>(state.range(0)), 0xab);
  for (auto _ : state) benchmark::DoNotOptimize(crypto::sha256(data));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Sha256Statement)->Arg(64)->Arg(300)->Arg(4096);

void BM_MerkleAppend(benchmark::State& state) {
  merkle::Frontier frontier;
  merkle::Hash leaf = merkle::leaf_hash(as_view("entry"));
  size_t stored = 0;
  for (auto _ : state) frontier.append(leaf, [&](const merkle::Frontier::NewNode&) { ++stored; });
  benchmark::DoNotOptimize(stored);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleAppend);

void BM_InclusionProof(benchmark::State& state) {
  merkle::MemoryTree tree;
  const auto size = static_cast<uint64_t>(state.range(0));
  for (uint64_t i = 0; i < size; ++i)
    tree.append_leaf_hash(merkle::leaf_hash(as_view(std::to_string(i))));
  uint64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(merkle::inclusion_proof(tree, i, size).ok());
    i = (i + 7919) % size;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_InclusionProof)->Arg(1 << 10)->Arg(1 << 20);

}  // namespace
}  // namespace custos
