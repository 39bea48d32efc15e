// A whole custos consensus cluster in one process: every replica, their disks,
// mempools and the network between them, driven by one EventQueue and one
// seeded PRNG. The driver follows the Replica contract (persist safety state
// and blocks synced, then send, then execute commits, then arm the timer).
//
// Contract:
// - Cluster::run() is a pure function of (Scenario, seed): same inputs, same
//   event sequence, same digest(). Nothing reads the wall clock or a global
//   random source; keys are derived from the validator index.
// - Invariants (sim/invariants.h) are checked after EVERY event over the
//   honest replicas; the first violation stops the run and is reported in
//   RunResult::failure together with the last events.
// - Liveness: once the fault phase ends (network healed, crashed nodes
//   restarted), every honest replica must commit scenario.liveness_blocks more
//   blocks within scenario.liveness_window_ms of simulated time.
// - Byzantine behaviours apply to at most f = (n - 1) / 3 validator indexes
//   (asserted: the scenario is written by us, not read from outside).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "consensus/replica.h"
#include "consensus/types.h"
#include "crypto/keys.h"
#include "sim/event_queue.h"
#include "sim/invariants.h"
#include "sim/network.h"

namespace custos::sim {

using consensus::NodeIndex;

// Items a simulated mempool holds; newer items are dropped beyond it (the real
// node answers 503 there).
inline constexpr size_t kMempoolItemsMax = 10'000;
// Size of a synthetic payload item (a stand-in for a signed statement).
inline constexpr size_t kItemBytesMin = 24;
inline constexpr size_t kItemBytesMax = 300;
// Events kept for the failure report.
inline constexpr size_t kTraceEventsMax = 60;

enum class Behaviour {
  kHonest,
  kTwins,        // two instances with one index and key, in different partitions
  kEquivocator,  // proposes two conflicting blocks per round, one to each half
  kForger,       // equivocates, forges votes of other validators, tampers proposals
  kWithholder,   // never sends its votes or timeouts
};
const char* behaviour_name(Behaviour behaviour);

struct Scenario {
  std::string name;
  size_t validators = 4;
  // Byzantine validator count; which indexes get them is drawn per seed.
  std::vector<Behaviour> byzantine;

  LinkFaults faults;         // during the fault phase
  LinkFaults healed_faults;  // afterwards
  uint64_t fault_phase_ms = 6'000;
  int partition_phases_max = 0;  // random partition schedule during the fault phase
  // Probability that a partition phase is the Twins split: the first copy of
  // every twin on one side, the second on the other, honest nodes dealt
  // evenly between them (instead of random groups).
  double twins_split = 0;
  int crashes_max = 0;          // scheduled crash/restart pairs during the fault phase
  double crash_mid_output = 0;  // per Output: crash after persisting, mid-send
  uint64_t downtime_max_ms = 3'000;
  uint64_t item_interval_max_ms = 120;  // next item after U(1, this)
  uint64_t ledger_sync_interval_ms = 250;
  uint64_t clock_skew_max_ms = 20;

  uint64_t liveness_blocks = 4;
  uint64_t liveness_window_ms = 90'000;

  uint64_t round_timeout_ms = 1'000;
  uint64_t round_timeout_max_ms = 10'000;
  uint64_t idle_proposal_ms = 500;
  size_t block_items_max = 32;
  size_t block_bytes_max = 4 * 1024;

  // Test-only driver bug: a crash also loses the SafetyState, as if the
  // driver had not synced it (breaks the Replica contract). Used to show that
  // the checkers catch the double votes this allows.
  bool bug_forget_safety_on_crash = false;
  // Test-only: instance 0 skips executing its second committed block (the
  // chain check must fire) / executes a changed copy of its first item (the
  // receipt check must fire). They show the checkers are wired into the run.
  bool bug_skip_second_commit = false;
  bool bug_tamper_first_item = false;
  // Test-only: allow more than f Byzantine validators, where safety is not
  // promised, to show that real conflicting commits are caught end to end.
  bool beyond_fault_model = false;
};

struct RunStats {
  uint64_t events = 0;
  uint64_t end_ms = 0;
  uint64_t heights_min = 0;  // shortest honest committed sequence at the end
  uint64_t heights_max = 0;
  uint64_t items_executed_max = 0;
  uint64_t duplicate_items = 0;  // an item executed twice by one replica
  uint64_t crashes = 0;
  uint64_t decode_refused = 0;   // corrupted bytes refused by decode_message
  uint64_t corrupt_decoded = 0;  // corrupted bytes that still decoded (must fail verification)
  uint64_t forged_messages = 0;  // sent by kForger
  uint64_t equivocations = 0;    // conflicting proposals sent
  uint64_t withheld_messages = 0;
  NetworkStats network;
};

struct RunResult {
  bool ok = false;
  std::string failure;  // empty when ok; else reason, then the last events
  RunStats stats;
  uint64_t digest = 0;  // hash of the event sequence and every commit
};

// The simulation's Ed25519 key for a validator index: derived from the index
// alone, so block ids (which cover QC signatures) repeat across runs.
const crypto::PrivateKey& validator_key(NodeIndex index);

// One simulation run.
RunResult run_scenario(const Scenario& scenario, uint64_t seed);

}  // namespace custos::sim
