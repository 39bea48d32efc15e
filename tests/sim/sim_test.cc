// The consensus simulation scenarios (see tests/sim/README.md). Each TEST
// runs one scenario over many seeds; a failure prints the seed and the
// command that reruns it.
#include <gtest/gtest.h>

#include "sim/scenarios.h"

namespace custos::sim {
namespace {

// Default seed counts: together about 400 runs, within the CI budget (~2
// minutes on one core, RelWithDebInfo). CUSTOS_SIM_SEEDS=N overrides them.
TEST(Sim, Happy) {
  run_seeds(scenarios::happy(), 10);
}
TEST(Sim, LossyNetwork) {
  run_seeds(scenarios::lossy_network(), 40);
}
TEST(Sim, CrashRestart) {
  run_seeds(scenarios::crash_restart(), 50);
}
TEST(Sim, Twins) {
  run_seeds(scenarios::twins(), 50);
}
TEST(Sim, Equivocation) {
  run_seeds(scenarios::equivocation(), 30);
}
TEST(Sim, Forger) {
  run_seeds(scenarios::forger(), 30);
}
TEST(Sim, CorruptedBytes) {
  run_seeds(scenarios::corrupted_bytes(), 30);
}
TEST(Sim, VoteWithholding) {
  run_seeds(scenarios::vote_withholding(), 30);
}
TEST(Sim, SevenTwinsEquivocator) {
  run_seeds(scenarios::seven_twins_equivocator(), 20);
}
TEST(Sim, SevenForgerWithholder) {
  run_seeds(scenarios::seven_forger_withholder(), 20);
}
TEST(Sim, Chaos) {
  run_seeds(scenarios::chaos(), 60);
}

// --- Regression seeds: runs that once failed, by name ---

void expect_seed_passes(const Scenario& scenario, uint64_t seed) {
  RunResult result = run_scenario(scenario, seed);
  EXPECT_TRUE(result.ok) << "[custos-sim] scenario " << scenario.name << " seed " << seed
                         << " FAILED " << result.failure
                         << "\nrerun: " << rerun_command(scenario, seed);
}

// Found against consensus 0342095 (liveness). After a partition heals, honest
// instance 3 gets a Timeout whose high_qc is the genesis QC; the genesis block
// is no longer in its block tree (it committed past it), so it sends a
// BlockRequest for the genesis id. No peer can serve it: genesis is never in
// Output.blocks, hence never in any BlockReader, and every peer has pruned it
// from memory. Each empty BlockResponse moves the single outstanding fetch to
// the next peer with a fresh deadline, so the fetch slot never frees and the
// node never requests the blocks it really misses: it stays at committed
// round 4 while the others reach round 109.
TEST(SimRegression, Seed19_LossyNetwork_GenesisFetchStall) {
  expect_seed_passes(scenarios::lossy_network(), 19);
}

}  // namespace
}  // namespace custos::sim
