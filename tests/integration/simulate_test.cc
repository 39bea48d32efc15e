// `custos simulate` end to end (issue 5: every injected fault is refused or
// flagged as documented in docs/gateway.md, "Hospital simulator"). Real
// processes: a node (or a 4-node consortium, one node SIGKILLed and
// restarted during the run), Mosquitto from `custos broker init`,
// `custos gateway`, and `custos simulate --json --faults all`. Each fault's
// outcome is checked twice: in the simulator's JSON summary (what the
// gateway answered) and on the ledger itself (entries by issuer and flag,
// the incident report), and the audit re-verifies the node's data at the end.
#include <functional>
#include <set>

#include "integration/cluster_harness.h"
#include "integration/gateway_harness.h"

namespace custos::integration {
namespace {

// The hospital of both tests: two wards of two beds (8 devices), played four
// times faster than the default so an infusion of the soft-limit bed goes
// through the whole chain within the run; faults at 8 s, the outage 8 s long.
const std::vector<std::string> kWards = {"icu", "oncology"};
constexpr int kBeds = 2;
constexpr int kDurationS = 40;
constexpr int kFaultAtS = 8;
constexpr int kOutageS = 8;
constexpr int64_t kSkewS = 600;  // hospital::Config::clock_skew_s
// `custos simulate` as a whole: provisioning, the run, the drain (20 s at most).
constexpr auto kSimulateTimeout = std::chrono::seconds(kDurationS + 45);
// How long after the outage began an event sent just before it may still be
// registered (the link is cut, but what was already on the wire arrives).
constexpr uint64_t kOutageGraceMs = 2000;

const std::string kFirstPump = "sim-icu-b1-pump";      // replay, tamper, soft-limit bed
const std::string kLastPump = "sim-oncology-b2-pump";  // cloned key, rogue firmware
const std::string kSkewedMonitor = "sim-oncology-b2-mon";
const std::string kAdvisory = "SIM-ADV-2026-1";  // names the first ward's pumps' firmware

std::vector<std::string> device_ids() {
  std::vector<std::string> ids;
  for (const auto& w : kWards) {
    for (int b = 1; b <= kBeds; ++b) {
      for (const char* kind : {"pump", "mon"})
        ids.push_back("sim-" + w + "-b" + std::to_string(b) + "-" + kind);
    }
  }
  return ids;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

bool has_flag(const Json& entry, const std::string& code) {
  if (!entry.contains("flags")) return false;
  for (const auto& f : entry["flags"]) {
    if (starts_with(f.get<std::string>(), code + ":") || f.get<std::string>() == code) return true;
  }
  return false;
}

// Every entry a query matches, all pages.
std::vector<Json> entries(int port, const std::string& query) {
  std::vector<Json> out;
  std::string cursor;
  for (int page = 0; page < 1000; ++page) {
    std::string path = "/v1/entries?limit=1000&" + query;
    if (!cursor.empty()) path += "&cursor=" + cursor;
    auto res = http_get(port, path);
    if (!res || res->status != 200) {
      ADD_FAILURE() << path << ": " << (res ? res->body : "no answer");
      return out;
    }
    Json doc = Json::parse(res->body);
    for (auto& e : doc["entries"]) out.push_back(e);
    if (doc["next_cursor"].is_null()) break;
    cursor = doc["next_cursor"].get<std::string>();
  }
  return out;
}

struct SimulateRun {
  int exit_code = -1;
  std::vector<Json> lines;  // the --json summaries, the last one final
  std::string err;
};

// Runs `custos simulate ARGS` to its end, calling `during(seconds since
// start)` about every 100 ms; kills it after kSimulateTimeout.
SimulateRun simulate(const std::string& scratch, const std::vector<std::string>& args,
                     const std::function<void(double)>& during = {}) {
  std::vector<std::string> argv{custos_binary(), "simulate"};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = scratch + "/simulate.out", err = scratch + "/simulate.err";
  const auto start = Clock::now();
  const pid_t pid = spawn(argv, out, err);
  SimulateRun run;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (Clock::now() - start > kSimulateTimeout) {
      ::kill(pid, SIGKILL);
      run.exit_code = wait_exit(pid);
      ADD_FAILURE() << "custos simulate still ran after " << elapsed << " s";
      break;
    }
    if (during) during(elapsed);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::istringstream in(slurp(out));
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line, nullptr, false);
    if (j.is_object()) run.lines.push_back(std::move(j));
  }
  run.err = slurp(err);
  return run;
}

std::vector<std::string> simulate_args(const std::vector<std::string>& node_urls,
                                       const std::string& admin_key, const std::string& broker_dir,
                                       const std::string& dir) {
  std::vector<std::string> args;
  for (const auto& u : node_urls) {
    args.push_back("--node");
    args.push_back(u);
  }
  std::string wards;
  for (const auto& w : kWards) wards += (wards.empty() ? "" : ",") + w;
  const std::vector<std::string> rest = {"--admin-key",
                                         admin_key,
                                         "--broker-dir",
                                         broker_dir,
                                         "--dir",
                                         dir,
                                         "--wards",
                                         wards,
                                         "--beds",
                                         std::to_string(kBeds),
                                         "--status-interval-ms",
                                         "1000",
                                         "--duration-s",
                                         std::to_string(kDurationS),
                                         "--faults",
                                         "all",
                                         "--fault-at-s",
                                         std::to_string(kFaultAtS),
                                         "--outage-s",
                                         std::to_string(kOutageS),
                                         "--speed",
                                         "4",
                                         "--seed",
                                         "3",
                                         "--summary-interval-s",
                                         "1",
                                         "--json"};
  args.insert(args.end(), rest.begin(), rest.end());
  return args;
}

// The count of the one fault outcome that starts with `prefix`, 0 if none;
// fails when several do.
uint64_t outcome(const Json& faults, const std::string& prefix, std::string* key = nullptr) {
  uint64_t n = 0;
  int matches = 0;
  for (const auto& [k, v] : faults.items()) {
    if (!starts_with(k, prefix)) continue;
    ++matches;
    n = v.get<uint64_t>();
    if (key) *key = k;
  }
  EXPECT_LE(matches, 1) << prefix << " in " << faults.dump(2);
  return n;
}

// What the run's JSON summary must say about each fault and every event.
// Returns the orders of the soft-limit bed whose override was registered.
std::vector<std::string> check_summary(const SimulateRun& run, std::string* replayed_prefix) {
  std::vector<std::string> orders;
  EXPECT_EQ(run.exit_code, 0) << run.err;
  if (run.lines.empty()) {
    ADD_FAILURE() << "no summary; stderr:\n" << run.err;
    return orders;
  }
  const Json& last = run.lines.back();
  SCOPED_TRACE("final summary: " + last.dump(2));
  EXPECT_TRUE(last.value("final", false));
  for (size_t i = 0; i + 1 < run.lines.size(); ++i) EXPECT_FALSE(run.lines[i].value("final", true));

  // Every event the devices published through the SDK got exactly one first
  // answer, and every one was "on the ledger" (registered, or found there
  // already after the outage cut a PUBACK off); the faults' own messages
  // (replay, tamper, clone) are counted apart and refused by design.
  const auto published = last["events_published"].get<uint64_t>();
  EXPECT_GT(published, 200u);
  EXPECT_EQ(last["events_unanswered"].get<uint64_t>(), 0u);
  EXPECT_EQ(last["events_refused"].get<uint64_t>(), 0u);
  EXPECT_EQ(published,
            last["events_registered"].get<uint64_t>() + last["already_registered"].get<uint64_t>());
  EXPECT_EQ(last["earlier_run_answers"].get<uint64_t>(), 0u);
  EXPECT_EQ(last["queued_on_devices"].get<uint64_t>(), 0u);
  EXPECT_EQ(last["fault_messages"].get<uint64_t>(), 3u);
  // Refusals: exactly the tampered message and the clone's, nothing of a
  // device or a clinician.
  EXPECT_EQ(last["refused"], Json({{"bad-signature", 1}, {"topic-mismatch", 1}}));
  EXPECT_GT(last["orders"].value("programming", 0), 0);

  const Json& faults = last["faults"];
  EXPECT_EQ(outcome(faults, "tamper: one byte of " + kFirstPump +
                                "'s status flipped, refused: bad-signature"),
            1u);
  EXPECT_EQ(outcome(faults, "cloned-key: sim-clone-1 signing with " + kLastPump +
                                "'s key, refused: topic-mismatch"),
            1u);
  std::string key;
  EXPECT_EQ(outcome(faults, "replay: " + kFirstPump + "'s entry ", &key), 1u);
  EXPECT_NE(key.find("sent again, answered already-registered"), std::string::npos) << key;
  if (key.size() > 40) {
    *replayed_prefix = key.substr(key.find("'s entry ") + 9, 16);
  }
  EXPECT_EQ(outcome(faults, "rogue-firmware: " + kLastPump +
                                " installed 3.2.0-patched: registered, flagged firmware-unknown"),
            1u);
  EXPECT_GT(outcome(faults, "rogue-firmware: " + kLastPump +
                                "'s later events: registered, flagged firmware-unknown"),
            0u);
  EXPECT_GT(outcome(faults, "clock-skew: " + kSkewedMonitor + "'s events (clock +" +
                                std::to_string(kSkewS) + " s): registered, flagged clock-skew"),
            0u);
  EXPECT_EQ(outcome(faults, "ward-outage: oncology's devices lost the network for " +
                                std::to_string(kOutageS) + " s"),
            4u);
  const uint64_t queued = outcome(faults, "ward-outage: events queued on oncology's devices");
  EXPECT_GT(queued, 4u);
  EXPECT_EQ(outcome(faults, "ward-outage: events queued while offline, then registered"), queued);
  for (const auto& [k, v] : faults.items()) {
    EXPECT_EQ(k.find("not flagged"), std::string::npos) << k;
    EXPECT_EQ(k.find("no answer"), std::string::npos) << k;
    EXPECT_FALSE(k.find("refused") != std::string::npos && !starts_with(k, "tamper:") &&
                 !starts_with(k, "cloned-key:"))
        << k;
    const std::string soft =
        "soft-limit-override: " + kFirstPump + " overrode the soft limit of order ";
    if (starts_with(k, soft)) {
      const std::string rest = k.substr(soft.size());
      EXPECT_EQ(rest.substr(rest.find(':')), ": registered") << k;
      orders.push_back(rest.substr(0, rest.find(':')));
    }
  }
  EXPECT_FALSE(orders.empty()) << "no infusion of the soft-limit bed reached its override";

  const Json& flags = last["flags"];
  EXPECT_GT(flags.value("firmware-under-advisory", 0), 0);
  EXPECT_GT(flags.value("clock-skew", 0), 0);
  EXPECT_GT(flags.value("firmware-unknown", 0), 0);

  const Json& outage = last["ward_outage"];
  EXPECT_EQ(outage.value("ward", ""), "oncology");
  EXPECT_EQ(outage.value("devices", 0), 4);
  EXPECT_FALSE(outage["to_ms"].is_null());
  return orders;
}

// What the ledger itself must hold after the run.
void check_ledger(int port, const SimulateRun& run, const std::vector<std::string>& soft_orders,
                  const std::string& replayed_prefix) {
  if (run.lines.empty()) return;
  const Json& last = run.lines.back();
  // Every device's events are on the ledger once each: sequence numbers 1..n
  // without a gap (one run of a fresh device skips none) or a duplicate,
  // and as many as the devices published.
  uint64_t total = 0;
  std::map<std::string, std::vector<Json>> by_device;
  for (const auto& id : device_ids()) {
    auto& list = by_device[id] = entries(port, "issuer=" + id);
    std::set<std::string> ids;
    std::vector<uint64_t> seqs;
    for (const auto& e : list) {
      ids.insert(e["id"].get<std::string>());
      seqs.push_back(e["sequence"].get<uint64_t>());
    }
    EXPECT_EQ(ids.size(), list.size()) << id;
    std::sort(seqs.begin(), seqs.end());
    for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], i + 1) << id;
    EXPECT_GT(list.size(), 5u) << id;
    total += list.size();
  }
  EXPECT_EQ(total, last["events_published"].get<uint64_t>());
  // Nothing of the clone, nothing tampered (its sequence was far above the
  // device's), and the replayed entry once.
  EXPECT_TRUE(entries(port, "issuer=sim-clone-1").empty());
  ASSERT_EQ(replayed_prefix.size(), 16u);
  int replayed = 0;
  for (const auto& e : by_device[kFirstPump])
    replayed += starts_with(e["id"].get<std::string>(), replayed_prefix) ? 1 : 0;
  EXPECT_EQ(replayed, 1);

  // Rogue firmware: the installation and everything after it flagged
  // firmware-unknown, nothing before it, nothing of another device.
  {
    const auto& list = by_device[kLastPump];
    std::optional<uint64_t> install;
    for (const auto& e : list) {
      if (e["content_type"] == "application/vnd.custos.firmware-install+cbor") {
        EXPECT_FALSE(install) << "two installations";
        install = e["index"].get<uint64_t>();
      }
    }
    ASSERT_TRUE(install);
    size_t after = 0;
    for (const auto& e : list) {
      const bool later = e["index"].get<uint64_t>() >= *install;
      EXPECT_EQ(has_flag(e, "firmware-unknown"), later) << e.dump();
      after += later ? 1 : 0;
    }
    EXPECT_GT(after, 3u);
    const auto flagged = entries(port, "flag=firmware-unknown");
    EXPECT_EQ(flagged.size(), after);
    for (const auto& e : flagged) EXPECT_EQ(e["issuer"], kLastPump);
  }
  // Clock skew: every event of the skewed monitor, and nothing else.
  for (const auto& e : by_device[kSkewedMonitor])
    EXPECT_TRUE(has_flag(e, "clock-skew")) << e.dump();
  const auto skewed = entries(port, "flag=clock-skew");
  EXPECT_EQ(skewed.size(), by_device[kSkewedMonitor].size());
  for (const auto& e : skewed) EXPECT_EQ(e["issuer"], kSkewedMonitor);
  // The advisory: every event of the first ward's pumps (firmware 3.1.0),
  // no other device's.
  for (const auto& [id, list] : by_device) {
    const bool advised = starts_with(id, "sim-icu-") && id.find("-pump") != std::string::npos;
    for (const auto& e : list) {
      EXPECT_EQ(has_flag(e, "firmware-under-advisory"), advised) << e.dump();
      if (advised) {
        EXPECT_NE(e["flags"].dump().find(kAdvisory), std::string::npos) << e.dump();
      }
    }
  }
  // Soft-limit override: a deviation of each affected order's report,
  // attributed to the nurse who programmed the pump.
  for (const auto& order : soft_orders) {
    auto res = http_get(port, "/v1/orders/" + order + "/report?receipts=false");
    ASSERT_TRUE(res && res->status == 200) << order << ": " << (res ? res->body : "no answer");
    Json report = Json::parse(res->body);
    bool found = false;
    for (const auto& d : report["deviations"]) {
      if (d["code"] == "soft-limit-override") {
        found = true;
        EXPECT_EQ(d["party"].value("role", ""), "nurse") << d.dump();
      }
    }
    EXPECT_TRUE(found) << report["deviations"].dump(2);
  }
  // Ward outage: nothing of the ward's devices registered while they were
  // offline (but what was on the wire as the link went down); what they
  // signed meanwhile arrived after it, and the gap-free sequences above
  // say it arrived once each.
  const Json& outage = last["ward_outage"];
  if (outage["to_ms"].is_null()) return;
  const auto from = outage["from_ms"].get<uint64_t>(), to = outage["to_ms"].get<uint64_t>();
  EXPECT_GE(to - from, static_cast<uint64_t>(kOutageS) * 1000);
  size_t queued = 0;
  for (const auto& [id, list] : by_device) {
    if (!starts_with(id, "sim-oncology-")) continue;
    const int64_t offset = id == kSkewedMonitor ? kSkewS : 0;
    for (const auto& e : list) {
      const auto registered = e["registered_ms"].get<uint64_t>();
      EXPECT_FALSE(registered >= from + kOutageGraceMs && registered < to) << e.dump();
      const auto signed_ms =
          static_cast<uint64_t>(e["issued_at"].get<int64_t>() - offset) * uint64_t{1000};
      if (signed_ms >= from + 1000 && signed_ms + 1000 <= to) {
        ++queued;
        EXPECT_GE(registered, to) << e.dump();
      }
    }
  }
  EXPECT_GT(queued, 4u);
}

void check_audit(const std::string& scratch, const std::string& data_dir) {
  CommandResult audit = run_custos(scratch, {"audit", "--data-dir", data_dir, "--json"});
  EXPECT_EQ(audit.exit_code, 0) << audit.out << audit.err;
  Json aj = Json::parse(audit.out, nullptr, false);
  ASSERT_TRUE(aj.is_object()) << audit.out;
  EXPECT_TRUE(aj.value("ok", false)) << audit.out;
  EXPECT_GT(aj.value("flagged_entries", 0), 0) << audit.out;
}

void check_gateway(const GatewayProcess& gw) {
  Json s = gw.status();
  EXPECT_EQ(s["refused_by_reason"], Json({{"bad-signature", 1}, {"topic-mismatch", 1}}))
      << s.dump();
  EXPECT_EQ(s.value("spool_depth", 1), 0) << s.dump();
  EXPECT_GT(s.value("devices_offline", 0), 3) << s.dump();  // the ward's wills
}

TEST(SimulateTest, EveryFaultIsRefusedOrFlaggedAsDocumented) {
  TempDir dir;
  std::filesystem::create_directories(dir / "node");
  NodeProcess node(dir / "node");
  ASSERT_TRUE(node.start());
  BrokerProcess broker(dir / "broker");
  ASSERT_TRUE(broker.start());
  GatewayProcess gw(dir / "gw", broker, {node.url()});
  ASSERT_TRUE(gw.start());
  const SimulateRun run = simulate(
      dir.path(), simulate_args({node.url()}, node.admin_key_path(), broker.dir(), dir / "sim"));
  std::string replayed;
  const auto soft_orders = check_summary(run, &replayed);
  check_ledger(node.port(), run, soft_orders, replayed);
  check_gateway(gw);
  EXPECT_EQ(gw.stop(), 0);
  EXPECT_EQ(node.stop(), 0);
  check_audit(dir.path(), node.data_dir());
  if (HasFailure()) std::fprintf(stderr, "simulate stderr:\n%s\n", run.err.c_str());
}

// The same hospital on a 4-node consortium; node 0 (the gateway's and the
// clinicians' first choice) is SIGKILLed during the run and restarted: the
// summary sees it down and back, every fault comes out the same, every
// node's ledger converges and passes the audit.
TEST(SimulateTest, FourNodesWithANodeKilledAndRestarted) {
  TempDir dir;
  ClusterOptions options;
  Cluster cluster(dir, options, cluster_seed());
  ASSERT_TRUE(cluster.init(dir.path()));
  ASSERT_TRUE(cluster.start_all());
  BrokerProcess broker(dir / "broker");
  ASSERT_TRUE(broker.start());
  std::vector<std::string> urls;
  for (size_t i = 0; i < cluster.size(); ++i)
    urls.push_back("http://127.0.0.1:" + std::to_string(cluster.api_port(i)));
  GatewayProcess gw(dir / "gw", broker, urls);
  ASSERT_TRUE(gw.start());
  // Provisioning takes a few seconds; the faults come 8 s into the run.
  constexpr double kKillAtS = 22, kRestartAtS = 32;
  bool killed = false, restarted = false;
  const SimulateRun run =
      simulate(dir.path(),
               simulate_args(urls, cluster.dir() + "/admin/admin.key", broker.dir(), dir / "sim"),
               [&](double elapsed) {
                 if (!killed && elapsed >= kKillAtS) {
                   killed = true;
                   EXPECT_EQ(cluster.kill(0), 128 + SIGKILL);
                 }
                 if (killed && !restarted && elapsed >= kRestartAtS) {
                   restarted = true;
                   EXPECT_TRUE(cluster.start(0));
                 }
               });
  EXPECT_TRUE(killed && restarted);
  std::string replayed;
  const auto soft_orders = check_summary(run, &replayed);
  bool seen_down = false;
  for (const auto& line : run.lines) seen_down = seen_down || line["nodes_up"][0] == false;
  EXPECT_TRUE(seen_down) << "the summary never showed node 0 down";
  if (!run.lines.empty()) {
    EXPECT_EQ(run.lines.back()["nodes_up"], Json({true, true, true, true}));
  }
  ASSERT_TRUE(cluster.wait_converged({0, 1, 2, 3}, 1, std::chrono::seconds(30)));
  check_ledger(cluster.api_port(1), run, soft_orders, replayed);
  check_gateway(gw);
  EXPECT_EQ(gw.stop(), 0);
  for (size_t i = 0; i < cluster.size(); ++i) EXPECT_EQ(cluster.stop(i), 0);
  for (size_t i = 0; i < cluster.size(); ++i) check_audit(dir.path(), cluster.data_dir(i));
  if (HasFailure()) {
    std::fprintf(stderr, "simulate stderr:\n%s\n", run.err.c_str());
    cluster.dump_logs();
  }
}

}  // namespace
}  // namespace custos::integration
