// The hospital model: every bed's infusion goes through the whole chain in
// order, devices report at their interval, faults happen once, and a run is
// reproducible from its seed.
#include "hospital/hospital.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "domain/model.h"

namespace custos::hospital {
namespace {

std::string event_of(const Action& a) {
  const cbor::Value* e = a.payload.find("event");
  return e && e->is(cbor::Type::kText) ? e->as_text() : "";
}

// Runs the model for `duration_ms` in steps, answering every clinician step
// as registered with a made-up entry id.
std::vector<Action> run(Hospital& h, uint64_t duration_ms, uint64_t step_ms = 100) {
  std::vector<Action> all;
  int id = 0;
  for (uint64_t t = 1000; t <= 1000 + duration_ms; t += step_ms) {
    for (Action& a : h.advance(t)) {
      if (a.kind == Action::Kind::kClinician) {
        char hex[65];
        std::snprintf(hex, sizeof hex, "%064d", ++id);
        h.registered(a.order, a.step, std::string(hex));
      }
      all.push_back(std::move(a));
    }
  }
  return all;
}

TEST(HospitalTest, EveryInfusionFollowsTheChainInOrder) {
  Config c;
  c.wards = {"icu"};
  c.beds_per_ward = 2;
  c.seed = 7;
  Hospital h(c);
  ASSERT_EQ(h.devices().size(), 4u);
  auto actions = run(h, 600000);
  // Per order: the sequence of steps and pump events.
  std::map<std::string, std::vector<std::string>> steps;
  for (const auto& a : actions) {
    if (a.kind == Action::Kind::kClinician) steps[a.order].push_back(a.step);
    if (a.kind == Action::Kind::kDevice && !a.subject.empty() && a.subject.rfind("order/", 0) == 0)
      steps[a.subject.substr(6)].push_back(event_of(a));
  }
  ASSERT_GE(steps.size(), 4u);
  size_t completed = 0;
  for (const auto& [order, s] : steps) {
    ASSERT_GE(s.size(), 1u);
    EXPECT_EQ(s[0], "order") << order;
    if (s.size() >= 4) {
      EXPECT_EQ(s[1], "verification");
      EXPECT_EQ(s[2], "programming");
      EXPECT_EQ(s[3], "programming");  // the pump's record of it
    }
    if (s.back() == "completion") ++completed;
  }
  EXPECT_GE(completed, 3u);
  EXPECT_GE(h.orders_started(), completed);
}

TEST(HospitalTest, DevicesReportAtTheirInterval) {
  Config c;
  c.wards = {"icu", "ward-2"};
  c.beds_per_ward = 3;
  c.status_interval_ms = 2000;
  Hospital h(c);
  auto actions = run(h, 60000);
  std::map<size_t, int> statuses;
  for (const auto& a : actions)
    if (event_of(a) == "status") ++statuses[a.device];
  ASSERT_EQ(statuses.size(), h.devices().size());
  for (const auto& [d, n] : statuses) {
    EXPECT_GE(n, 29) << h.devices()[d].id;
    EXPECT_LE(n, 31) << h.devices()[d].id;
  }
}

TEST(HospitalTest, FaultsHappenOnceAtTheirTime) {
  Config c;
  c.wards = {"icu", "ward-2"};
  c.beds_per_ward = 2;
  c.fault_at_ms = 5000;
  c.faults = kFaultReplay | kFaultTamper | kFaultClonedKey | kFaultRogueFirmware | kFaultWardOutage;
  Hospital h(c);
  auto actions = run(h, 60000);
  std::map<Action::Kind, int> kinds;
  int firmware = 0;
  for (const auto& a : actions) {
    ++kinds[a.kind];
    if (a.content_type == domain::kTypeFirmwareInstall) {
      ++firmware;
      EXPECT_GE(a.at_ms, 6000u);
    }
  }
  EXPECT_EQ(kinds[Action::Kind::kReplay], 1);
  EXPECT_EQ(kinds[Action::Kind::kTamper], 1);
  EXPECT_EQ(kinds[Action::Kind::kClone], 1);
  EXPECT_EQ(firmware, 1);
  EXPECT_EQ(kinds[Action::Kind::kNetworkDown], 4);  // the last ward's two beds, two devices each
  EXPECT_EQ(kinds[Action::Kind::kNetworkUp], 4);
}

TEST(HospitalTest, FaultsNameWhereTheyStrike) {
  Config c;
  c.wards = {"icu", "ward-2", "ward-3"};
  c.beds_per_ward = 2;
  Hospital quiet(c);
  EXPECT_FALSE(quiet.skewed_device());
  EXPECT_FALSE(quiet.rogue_firmware_device());
  EXPECT_FALSE(quiet.soft_limit_bed());
  EXPECT_FALSE(quiet.outage_ward());
  c.faults = *faults_from_names("all", nullptr);
  Hospital h(c);
  const auto& d = h.devices();
  ASSERT_TRUE(h.skewed_device());
  EXPECT_EQ(d[*h.skewed_device()].id, "sim-ward-3-b2-mon");
  ASSERT_TRUE(h.rogue_firmware_device());
  EXPECT_EQ(d[*h.rogue_firmware_device()].id, "sim-ward-3-b2-pump");
  EXPECT_EQ(h.soft_limit_bed(), size_t{0});
  EXPECT_EQ(h.outage_ward(), size_t{2});
}

// Every action of a fault says so; the soft-limit bed's infusions are all
// programmed above the limit and overridden, and nothing else is marked.
TEST(HospitalTest, FaultActionsAreMarked) {
  Config c;
  c.wards = {"icu", "ward-2"};
  c.beds_per_ward = 2;
  c.fault_at_ms = 5000;
  c.soft_limit_probability = 0;
  c.faults = *faults_from_names("all", nullptr);
  Hospital h(c);
  const size_t soft_pump = 0;  // bed 0's pump
  std::map<uint32_t, int> marked;
  int overrides = 0, soft_programmings = 0;
  std::set<std::string> soft_orders;
  for (const auto& a : run(h, 300000)) {
    if (a.fault) ++marked[a.fault];
    switch (a.kind) {
      case Action::Kind::kReplay:
        EXPECT_EQ(a.fault, kFaultReplay);
        break;
      case Action::Kind::kTamper:
        EXPECT_EQ(a.fault, kFaultTamper);
        break;
      case Action::Kind::kClone:
        EXPECT_EQ(a.fault, kFaultClonedKey);
        break;
      case Action::Kind::kNetworkDown:
      case Action::Kind::kNetworkUp:
        EXPECT_EQ(a.fault, kFaultWardOutage);
        EXPECT_EQ(h.devices()[a.device].ward, 1u);
        break;
      case Action::Kind::kClinician:
        if (a.step == "programming") {
          const cbor::Value* dev = a.payload.find("device");
          ASSERT_NE(dev, nullptr);
          const bool soft = dev->as_text() == h.devices()[soft_pump].id;
          EXPECT_EQ(a.fault, soft ? uint32_t{kFaultSoftLimitOverride} : 0u) << a.order;
          if (soft) {
            ++soft_programmings;
            soft_orders.insert(a.order);
          }
        } else {
          EXPECT_EQ(a.fault, 0u);
        }
        break;
      case Action::Kind::kDevice:
        if (a.content_type == domain::kTypeFirmwareInstall) {
          EXPECT_EQ(a.fault, kFaultRogueFirmware);
          EXPECT_EQ(a.device, *h.rogue_firmware_device());
        } else if (event_of(a) == "soft-limit-override") {
          EXPECT_EQ(a.device, soft_pump);  // no other bed by chance (probability 0)
          EXPECT_EQ(a.fault, kFaultSoftLimitOverride);
          EXPECT_TRUE(soft_orders.count(a.subject.substr(6))) << a.subject;
          ++overrides;
        } else if (event_of(a) == "programming" || event_of(a) == "soft-limit-alert") {
          EXPECT_EQ(a.fault, a.device == soft_pump ? uint32_t{kFaultSoftLimitOverride} : 0u);
        } else {
          EXPECT_EQ(a.fault, 0u) << event_of(a);
        }
        break;
    }
  }
  EXPECT_EQ(marked[kFaultReplay], 1);
  EXPECT_EQ(marked[kFaultTamper], 1);
  EXPECT_EQ(marked[kFaultClonedKey], 1);
  EXPECT_EQ(marked[kFaultRogueFirmware], 1);
  EXPECT_EQ(marked[kFaultWardOutage], 8);  // 4 devices, down and up
  EXPECT_GE(soft_programmings, 2);         // every infusion of the bed, not just one
  EXPECT_EQ(overrides, soft_programmings);
}

TEST(HospitalTest, OutageLastsItsConfiguredTime) {
  Config c;
  c.wards = {"icu", "ward-2"};
  c.beds_per_ward = 1;
  c.fault_at_ms = 3000;
  c.ward_outage_ms = 7000;
  c.faults = kFaultWardOutage;
  Hospital h(c);
  std::map<size_t, uint64_t> down, up;
  for (const auto& a : run(h, 30000)) {
    if (a.kind == Action::Kind::kNetworkDown) down[a.device] = a.at_ms;
    if (a.kind == Action::Kind::kNetworkUp) up[a.device] = a.at_ms;
  }
  ASSERT_EQ(down.size(), 2u);
  for (const auto& [d, at] : down) {
    EXPECT_EQ(h.devices()[d].ward, 1u);
    EXPECT_GE(at, 1000u + 3000u);
    EXPECT_EQ(up[d], at + 7000);
  }
}

TEST(HospitalTest, AtSpeedShortensTheWardsButNotTheFaults) {
  Config c;
  const Config f = at_speed(c, 4);
  EXPECT_EQ(f.idle_ms_min, c.idle_ms_min / 4);
  EXPECT_EQ(f.idle_ms_max, c.idle_ms_max / 4);
  EXPECT_EQ(f.infusion_ms_min, c.infusion_ms_min / 4);
  EXPECT_EQ(f.infusion_ms_max, c.infusion_ms_max / 4);
  EXPECT_EQ(f.clinician_step_ms_min, c.clinician_step_ms_min / 4);
  EXPECT_EQ(f.clinician_step_ms_max, c.clinician_step_ms_max / 4);
  EXPECT_EQ(f.status_interval_ms, c.status_interval_ms);
  EXPECT_EQ(f.fault_at_ms, c.fault_at_ms);
  EXPECT_EQ(f.ward_outage_ms, c.ward_outage_ms);
  EXPECT_EQ(at_speed(c, 1e9).idle_ms_min, 1u);  // never zero
  for (double bad : {0.0, -1.0, std::nan("")})
    EXPECT_EQ(at_speed(c, bad).idle_ms_min, c.idle_ms_min);
  // A faster hospital orders more in the same time.
  c.wards = {"icu"};
  c.beds_per_ward = 2;
  Hospital slow(c), fast(at_speed(c, 4));
  run(slow, 120000);
  run(fast, 120000);
  EXPECT_GT(fast.orders_started(), 2 * slow.orders_started());
}

TEST(HospitalTest, SameSeedSameRun) {
  Config c;
  c.seed = 42;
  Hospital a(c), b(c);
  auto ra = run(a, 120000), rb = run(b, 120000);
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i].at_ms, rb[i].at_ms);
    EXPECT_EQ(cbor::encode(ra[i].payload), cbor::encode(rb[i].payload));
  }
}

TEST(HospitalTest, FaultNames) {
  std::string unknown;
  EXPECT_EQ(faults_from_names("replay,tamper", &unknown), kFaultReplay | kFaultTamper);
  EXPECT_FALSE(faults_from_names("replay,explode", &unknown).has_value());
  EXPECT_EQ(unknown, "explode");
  EXPECT_EQ(faults_from_names("", &unknown), 0u);
  EXPECT_EQ(faults_from_names("all", &unknown), (1u << all_fault_names().size()) - 1);
}

}  // namespace
}  // namespace custos::hospital
