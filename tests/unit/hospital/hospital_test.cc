// The hospital model: every bed's infusion goes through the whole chain in
// order, devices report at their interval, faults happen once, and a run is
// reproducible from its seed.
#include "hospital/hospital.h"

#include <gtest/gtest.h>

#include <map>

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
}

}  // namespace
}  // namespace custos::hospital
