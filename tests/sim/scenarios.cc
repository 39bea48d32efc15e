#include "sim/scenarios.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>

namespace custos::sim {
namespace scenarios {
namespace {

LinkFaults mild() {
  LinkFaults faults;
  faults.loss = 0.01;
  faults.duplicate = 0.01;
  faults.long_delay = 0.01;
  return faults;
}

LinkFaults rough() {
  LinkFaults faults;
  faults.loss = 0.08;
  faults.duplicate = 0.05;
  faults.long_delay = 0.03;
  faults.long_delay_max_ms = 3'000;
  return faults;
}

}  // namespace

Scenario happy() {
  Scenario s;
  s.name = "Happy";
  s.fault_phase_ms = 2'000;
  s.liveness_blocks = 10;
  s.liveness_window_ms = 30'000;
  return s;
}

Scenario lossy_network() {
  Scenario s;
  s.name = "LossyNetwork";
  s.faults = rough();
  s.healed_faults = mild();
  s.partition_phases_max = 4;
  return s;
}

Scenario crash_restart() {
  Scenario s;
  s.name = "CrashRestart";
  s.faults = mild();
  s.healed_faults = mild();
  s.partition_phases_max = 2;
  s.crashes_max = 6;
  s.crash_mid_output = 0.003;
  s.ledger_sync_interval_ms = 400;
  return s;
}

Scenario twins() {
  Scenario s;
  s.name = "Twins";
  s.byzantine = {Behaviour::kTwins};
  s.faults = mild();
  s.healed_faults = mild();
  s.partition_phases_max = 5;
  s.twins_split = 0.5;
  return s;
}

Scenario equivocation() {
  Scenario s;
  s.name = "Equivocation";
  s.byzantine = {Behaviour::kEquivocator};
  s.faults = mild();
  s.healed_faults = mild();
  s.partition_phases_max = 2;
  return s;
}

Scenario forger() {
  Scenario s;
  s.name = "Forger";
  s.byzantine = {Behaviour::kForger};
  s.faults = mild();
  s.faults.corrupt = 0.03;
  s.healed_faults = mild();
  s.partition_phases_max = 2;
  return s;
}

Scenario corrupted_bytes() {
  Scenario s;
  s.name = "CorruptedBytes";
  s.faults = mild();
  s.faults.corrupt = 0.10;
  s.healed_faults = mild();
  s.healed_faults.corrupt = 0.02;
  return s;
}

Scenario vote_withholding() {
  Scenario s;
  s.name = "VoteWithholding";
  s.byzantine = {Behaviour::kWithholder};
  s.faults = mild();
  s.healed_faults = mild();
  s.partition_phases_max = 2;
  return s;
}

Scenario seven_twins_equivocator() {
  Scenario s;
  s.name = "SevenTwinsEquivocator";
  s.validators = 7;
  s.byzantine = {Behaviour::kTwins, Behaviour::kEquivocator};
  s.faults = rough();
  s.healed_faults = mild();
  s.partition_phases_max = 4;
  s.twins_split = 0.5;
  s.crashes_max = 3;
  return s;
}

Scenario seven_forger_withholder() {
  Scenario s;
  s.name = "SevenForgerWithholder";
  s.validators = 7;
  s.byzantine = {Behaviour::kForger, Behaviour::kWithholder};
  s.faults = mild();
  s.faults.corrupt = 0.03;
  s.healed_faults = mild();
  s.partition_phases_max = 2;
  return s;
}

Scenario chaos() {
  Scenario s;
  s.name = "Chaos";
  s.byzantine = {Behaviour::kTwins};
  s.faults = rough();
  s.faults.corrupt = 0.03;
  s.healed_faults = mild();
  s.partition_phases_max = 4;
  s.twins_split = 0.3;
  s.crashes_max = 4;
  s.crash_mid_output = 0.002;
  return s;
}

}  // namespace scenarios

namespace {

std::optional<uint64_t> env_u64(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  return std::strtoull(text, nullptr, 10);
}

// What is running, for a crash inside the core (an assert aborts the whole
// binary, and the seed must still be on screen).
char g_current_run[256] = "";

void on_fatal_signal(int signo) {
  const char prefix[] = "\n[custos-sim] died while running: ";
  (void)!write(2, prefix, sizeof(prefix) - 1);
  (void)!write(2, g_current_run, std::strlen(g_current_run));
  (void)!write(2, "\n", 1);
  std::signal(signo, SIG_DFL);
  std::raise(signo);
}

void set_current_run(const Scenario& scenario, uint64_t seed) {
  static bool installed = false;
  if (!installed) {
    std::signal(SIGABRT, on_fatal_signal);
    std::signal(SIGSEGV, on_fatal_signal);
    installed = true;
  }
  std::snprintf(g_current_run, sizeof(g_current_run), "%s", rerun_command(scenario, seed).c_str());
}

}  // namespace

std::string rerun_command(const Scenario& scenario, uint64_t seed) {
  return "CUSTOS_SIM_SEED=" + std::to_string(seed) + " custos_sim --gtest_filter='Sim.*" +
         scenario.name + "*'";
}

uint64_t run_seeds(const Scenario& scenario, uint64_t default_count) {
  uint64_t first = env_u64("CUSTOS_SIM_FIRST_SEED").value_or(1);
  uint64_t count = env_u64("CUSTOS_SIM_SEEDS").value_or(default_count);
  if (auto only = env_u64("CUSTOS_SIM_SEED")) {
    first = *only;
    count = 1;
  }
  bool verbose = env_u64("CUSTOS_SIM_VERBOSE").value_or(0) != 0;
  size_t failures = 0;
  uint64_t events = 0, heights = 0, crashes = 0, refused = 0, corrupt_decoded = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    set_current_run(scenario, seed);
    RunResult result = run_scenario(scenario, seed);
    if (verbose) {
      std::cout << "[custos-sim] " << scenario.name << " seed " << seed
                << (result.ok ? " ok" : " FAILED") << ": events " << result.stats.events
                << ", simulated " << result.stats.end_ms << "ms, heights "
                << result.stats.heights_min << ".." << result.stats.heights_max << ", crashes "
                << result.stats.crashes << std::endl;
    }
    events += result.stats.events;
    heights += result.stats.heights_min;
    crashes += result.stats.crashes;
    refused += result.stats.decode_refused;
    corrupt_decoded += result.stats.corrupt_decoded;
    if (!result.ok) {
      ADD_FAILURE() << "[custos-sim] scenario " << scenario.name << " seed " << seed << " FAILED "
                    << result.failure << "\nrerun: " << rerun_command(scenario, seed);
      if (++failures >= kFailuresReportedMax) break;
    }
  }
  g_current_run[0] = '\0';
  std::cout << "[custos-sim] " << scenario.name << ": " << count << " seeds from " << first << ", "
            << failures << " failed; mean events " << events / count << ", mean min height "
            << heights / count << ", crashes " << crashes << ", corrupt refused by decode "
            << refused << ", corrupt decoded " << corrupt_decoded << "\n";
  return count;
}

}  // namespace custos::sim
