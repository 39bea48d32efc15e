// The named simulation scenarios and the seed loop that runs them.
//
// Contract: a scenario is fixed code; everything that varies between runs
// (which indexes are Byzantine, partition schedule, crash times, delays,
// losses, items) is drawn from the seed. run_seeds() runs seeds
// first..first+count-1 (CUSTOS_SIM_SEEDS=N overrides count,
// CUSTOS_SIM_FIRST_SEED the start) or only CUSTOS_SIM_SEED when set, and
// reports each failing seed with the command that reruns it.
#pragma once

#include <cstdint>
#include <string>

#include "sim/cluster.h"

namespace custos::sim {

// Failing seeds reported per scenario before the loop stops (the first ones
// are the useful ones; the rest would only cost CI time).
inline constexpr size_t kFailuresReportedMax = 3;

namespace scenarios {
Scenario happy();             // no faults: the baseline
Scenario lossy_network();     // loss, duplication, long delays, partitions
Scenario crash_restart();     // crashes (also mid-send) dropping unsynced ledger writes
Scenario twins();             // n=4, one validator run twice, partitions keep the twins apart
Scenario equivocation();      // n=4, a leader sends conflicting proposals to each half
Scenario forger();            // n=4, equivocation + forged votes + tampered proposals
Scenario corrupted_bytes();   // n=4, byte flips on the wire
Scenario vote_withholding();  // n=4, a validator never sends votes or timeouts
Scenario seven_twins_equivocator();  // n=7, f=2: twins + equivocator, crashes, partitions
Scenario seven_forger_withholder();  // n=7, f=2: forger + withholder, corruption
Scenario chaos();  // n=4: twins with crashes, partitions, loss and corruption at once
}  // namespace scenarios

// The command line that reruns one seed of `scenario` (its gtest name).
std::string rerun_command(const Scenario& scenario, uint64_t seed);
// Runs the seeds; adds a gtest failure per failing seed. Returns the number
// of runs.
uint64_t run_seeds(const Scenario& scenario, uint64_t default_count);

}  // namespace custos::sim
