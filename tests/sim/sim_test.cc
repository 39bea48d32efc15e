// The consensus simulation scenarios (see tests/sim/README.md). Each TEST
// runs one scenario over many seeds; a failure prints the seed and the
// command that reruns it.
#include <gtest/gtest.h>

#include "sim/scenarios.h"

namespace custos::sim {
namespace {

// Default seed counts: together they fit the CI budget (~2 minutes on one
// core, RelWithDebInfo). CUSTOS_SIM_SEEDS=N overrides them all.
TEST(Sim, Happy) {
  run_seeds(scenarios::happy(), 10);
}
TEST(Sim, LossyNetwork) {
  run_seeds(scenarios::lossy_network(), 30);
}
TEST(Sim, CrashRestart) {
  run_seeds(scenarios::crash_restart(), 40);
}
TEST(Sim, Twins) {
  run_seeds(scenarios::twins(), 40);
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
  run_seeds(scenarios::seven_twins_equivocator(), 15);
}
TEST(Sim, SevenForgerWithholder) {
  run_seeds(scenarios::seven_forger_withholder(), 15);
}
TEST(Sim, Chaos) {
  run_seeds(scenarios::chaos(), 40);
}

}  // namespace
}  // namespace custos::sim
