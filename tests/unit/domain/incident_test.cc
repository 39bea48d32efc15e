// The incident report on a real ledger running the domain rules: the
// mission's scenario (a soft-limit override on a pump whose firmware is
// under advisory, then an occlusion alarm) names exactly those facts, every
// step's receipt verifies offline; then each other deviation rule on its
// own, the bounds, and the orders of a patient.
#include "domain/incident.h"

#include <gtest/gtest.h>

#include "core/quorum.h"
#include "cose/receipt.h"
#include "unit/domain/infusion_fixture.h"

namespace custos::domain {
namespace {

using testutil::InfusionWorld;
using testutil::map;
using testutil::num;
using testutil::txt;

// "code@step role:name" for each deviation, in report order.
std::vector<std::string> summary(const IncidentReport& r) {
  std::vector<std::string> out;
  for (const auto& d : r.deviations)
    out.push_back(d.code + "@" + std::to_string(d.step) + " " + d.party.role + ":" + d.party.name);
  return out;
}

std::vector<std::string> timeline(const IncidentReport& r) {
  std::vector<std::string> out;
  for (const auto& s : r.steps) {
    out.push_back(std::string(step_kind_name(s.kind)) + (s.event.empty() ? "" : ":" + s.event));
  }
  return out;
}

class IncidentTest : public ::testing::Test {
 protected:
  void SetUp() override { w_.build(); }

  IncidentReport report(const std::string& order, bool receipts = false) {
    ReportOptions options;
    options.receipts = receipts;
    auto r = incident_report(d_.ledger(), order, options);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : IncidentReport{};
  }

  const Deviation* find(const IncidentReport& r, const std::string& code) {
    for (const auto& d : r.deviations) {
      if (d.code == code) return &d;
    }
    return nullptr;
  }

  // The receipt bundle of a step, checked offline against the genesis node
  // keys with the consortium's quorum.
  ::testing::AssertionResult receipt_verifies(const Step& s) {
    if (s.receipt.empty())
      return ::testing::AssertionFailure() << "no receipt: " << s.receipt_error;
    auto bundle = cose::parse_receipt_bundle(s.receipt);
    if (!bundle.ok()) return ::testing::AssertionFailure() << bundle.status().to_string();
    std::vector<crypto::PublicKey> nodes;
    for (const auto& n : d_.ledger().genesis().nodes) nodes.push_back(n.key);
    Status ok = cose::verify_receipt_bundle(*bundle, s.statement, nodes, quorum_size(nodes.size()));
    if (!ok.ok()) return ::testing::AssertionFailure() << ok.to_string();
    return ::testing::AssertionSuccess();
  }

  testutil::TempDir dir_;
  testutil::DomainLedger d_{dir_.path()};
  InfusionWorld w_{d_};
};

// The mission: a nurse overrides a soft limit on a pump whose firmware is
// under advisory, and the pump raises an occlusion alarm.
TEST_F(IncidentTest, SoftLimitOverrideOnAdvisedFirmwareThenOcclusion) {
  auto adv = w_.advisory("ADV-2026-01", "2.0.0");
  ASSERT_TRUE(adv.ok()) << adv.status().to_string();
  auto o = w_.order("o-1");
  ASSERT_TRUE(o.ok());
  auto v = w_.verify("o-1", o->id);
  ASSERT_TRUE(v.ok());
  auto p = w_.program("o-1", v->id);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(w_.pump_programming("o-1").ok());
  ASSERT_TRUE(w_.event("o-1", "soft-limit-alert",
                       {{"limit", InfusionWorld::limit("soft", 20)}, {"rate_ml_h", num(25)}})
                  .ok());
  ASSERT_TRUE(w_.event("o-1", "soft-limit-override",
                       {{"limit", InfusionWorld::limit("soft", 20)}, {"rate_ml_h", num(25)}})
                  .ok());
  ASSERT_TRUE(w_.event("o-1", "start", {{"rate_ml_h", num(25)}}).ok());
  ASSERT_TRUE(
      w_.event("o-1", "alarm", {{"alarm", txt("occlusion-downstream")}, {"priority", txt("high")}})
          .ok());
  ASSERT_TRUE(w_.event("o-1", "stop", {{"volume_infused_ml", num(40)}}).ok());

  IncidentReport r = report("o-1", /*receipts=*/true);
  ASSERT_TRUE(r.order);
  EXPECT_EQ(r.status, "ended");
  EXPECT_FALSE(r.truncated);
  EXPECT_EQ(timeline(r),
            (std::vector<std::string>{"order", "verification:verified", "programming",
                                      "device-event:programming", "device-event:soft-limit-alert",
                                      "device-event:soft-limit-override", "device-event:start",
                                      "device-event:alarm", "device-event:stop"}));
  // Exactly these facts, each where it arose, and nothing else.
  EXPECT_EQ(summary(r), (std::vector<std::string>{"firmware-under-advisory@3 maker:acme",
                                                  "soft-limit-override@6 nurse:rn-jones",
                                                  "alarm@8 device:pump-17"}));
  const Deviation* advised = find(r, "firmware-under-advisory");
  ASSERT_NE(advised, nullptr);
  EXPECT_EQ(advised->about, "ADV-2026-01");
  EXPECT_EQ(advised->timing, "at-the-time");
  EXPECT_NE(advised->detail.find("ADV-2026-01 (high; CVE-2026-12345; fixed in 2.0.1"),
            std::string::npos)
      << advised->detail;
  EXPECT_NE(advised->detail.find("acme AP-500 firmware 2.0.0, which pump pump-17 ran"),
            std::string::npos);
  const Deviation* override_dev = find(r, "soft-limit-override");
  ASSERT_NE(override_dev, nullptr);
  EXPECT_NE(override_dev->detail.find("upper soft limit 20 mL/h was overridden at pump pump-17"),
            std::string::npos)
      << override_dev->detail;
  EXPECT_EQ(override_dev->party.org, "st-mary");
  const Deviation* alarm = find(r, "alarm");
  ASSERT_NE(alarm, nullptr);
  EXPECT_EQ(alarm->about, "occlusion-downstream");
  EXPECT_NE(alarm->detail.find("(high priority)"), std::string::npos);

  // Who signed each step, on which firmware and library, with a receipt.
  const Step& order_step = r.steps[0];
  EXPECT_EQ(order_step.signer.name, "dr-house");
  EXPECT_EQ(order_step.signer.org, "st-mary");
  EXPECT_EQ(order_step.signer.roles, std::vector<std::string>{"prescriber"});
  EXPECT_EQ(order_step.signer.kid, w_.prescriber.public_key().kid());
  EXPECT_EQ(order_step.entry, o->id);
  EXPECT_EQ(r.steps[1].signer.name, "ph-rao");
  const Step& nurse_step = r.steps[2];
  EXPECT_EQ(nurse_step.signer.name, "rn-jones");
  EXPECT_EQ(nurse_step.device, "pump-17");
  EXPECT_EQ(nurse_step.drug_library, "DL-7");
  for (size_t i = 3; i < r.steps.size(); ++i) {
    const Step& s = r.steps[i];
    EXPECT_EQ(s.signer.name, "pump-17");
    EXPECT_EQ(s.signer.device, "pump-17");
    EXPECT_EQ(s.device, "pump-17");
    ASSERT_TRUE(s.firmware) << i;
    EXPECT_EQ(s.firmware->version, "2.0.0");
    EXPECT_EQ(s.firmware->image_sha256, testutil::sha("image 2.0.0"));
  }
  EXPECT_EQ(r.steps[3].drug_library, "DL-7");
  for (const Step& s : r.steps) {
    EXPECT_TRUE(receipt_verifies(s)) << "step " << s.number;
    EXPECT_EQ(s.number, static_cast<size_t>(&s - r.steps.data()) + 1);
  }

  // The same log, the same report; and the audit replays every rule.
  IncidentReport again = report("o-1", true);
  EXPECT_EQ(summary(again), summary(r));
  for (size_t i = 0; i < r.steps.size(); ++i) EXPECT_EQ(again.steps[i].receipt, r.steps[i].receipt);
  ledger::AuditReport audit;
  Status ok = d_.audit(dir_.path(), &audit);
  EXPECT_TRUE(ok.ok()) << ok.to_string();
}

TEST_F(IncidentTest, ACleanChainHasNoDeviation) {
  w_.clean_chain("o-1");
  IncidentReport r = report("o-1");
  EXPECT_TRUE(r.deviations.empty()) << testing::PrintToString(summary(r));
  EXPECT_EQ(r.status, "ended");
  EXPECT_EQ(r.steps.size(), 6u);
  for (const Step& s : r.steps) {
    EXPECT_TRUE(s.receipt.empty());  // not asked for
    EXPECT_EQ(s.statement.empty(), false);
  }
}

TEST_F(IncidentTest, MissingAndOutOfOrderSteps) {
  // Programmed straight from the order, verified afterwards.
  auto o = w_.order("o-1");
  ASSERT_TRUE(w_.program("o-1", o->id).ok());
  ASSERT_TRUE(w_.verify("o-1", o->id).ok());
  ASSERT_TRUE(w_.event("o-1", "start").ok());
  ASSERT_TRUE(w_.event("o-1", "completion").ok());
  EXPECT_EQ(summary(report("o-1")),
            (std::vector<std::string>{"missing-verification@2 nurse:rn-jones",
                                      "verification-after-programming@3 pharmacist:ph-rao"}));

  // Rejected by the pharmacy, programmed anyway.
  auto o2 = w_.order("o-2");
  auto rejected = w_.verify("o-2", o2->id, "rejected");
  ASSERT_TRUE(w_.program("o-2", rejected->id).ok());
  IncidentReport r2 = report("o-2");
  EXPECT_EQ(summary(r2), (std::vector<std::string>{"programmed-after-rejection@3 nurse:rn-jones"}));
  EXPECT_EQ(r2.status, "programmed");

  // The pump started with no nurse's programming, and never ended.
  auto o3 = w_.order("o-3");
  ASSERT_TRUE(w_.verify("o-3", o3->id).ok());
  ASSERT_TRUE(w_.event("o-3", "start").ok());
  ASSERT_TRUE(w_.event("o-3", "pause").ok());
  IncidentReport r3 = report("o-3");
  EXPECT_EQ(summary(r3), (std::vector<std::string>{"start-before-programming@3 device:pump-17",
                                                   "no-end@4 device:pump-17"}));
  EXPECT_EQ(r3.status, "running");

  // Pump events naming an order before (or without) the order statement.
  ASSERT_TRUE(w_.event("o-4", "status", {{"battery_pct", num(90)}}).ok());
  auto o4 = w_.order("o-4");
  ASSERT_TRUE(o4.ok());
  EXPECT_EQ(summary(report("o-4")),
            (std::vector<std::string>{"event-before-order@1 device:pump-17"}));
  ASSERT_TRUE(w_.event("o-77", "start").ok());
  IncidentReport r77 = report("o-77");
  EXPECT_FALSE(r77.order);
  EXPECT_EQ(r77.status, "unknown");
  EXPECT_EQ(summary(r77),
            (std::vector<std::string>{
                "missing-order@1 device:pump-17", "missing-verification@1 device:pump-17",
                "start-before-programming@1 device:pump-17", "no-end@1 device:pump-17"}));
}

TEST_F(IncidentTest, ProgrammedValuesAreComparedWithATolerance) {
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  InfusionWorld::Programmed nurse;
  nurse.drug = "HEPARIN";  // names compare without case
  nurse.rate_ml_h = 50;
  nurse.vtbi_ml = 252;  // within 1 % of 250
  nurse.dose = 5000;
  nurse.dose_unit = "mg";
  ASSERT_TRUE(w_.program("o-1", v->id, nurse).ok());
  // The pump is compared with what the nurse programmed.
  ASSERT_TRUE(w_.pump_programming("o-1", 50, 500).ok());
  ASSERT_TRUE(w_.event("o-1", "start").ok());
  ASSERT_TRUE(w_.event("o-1", "rate-change", {{"rate_ml_h", num(50.4)}}).ok());
  ASSERT_TRUE(w_.event("o-1", "rate-change", {{"rate_ml_h", num(75)}}).ok());
  ASSERT_TRUE(w_.event("o-1", "completion").ok());
  IncidentReport r = report("o-1");
  EXPECT_EQ(summary(r), (std::vector<std::string>{
                            "dose-mismatch@3 nurse:rn-jones", "rate-mismatch@3 nurse:rn-jones",
                            "vtbi-mismatch@4 device:pump-17", "rate-mismatch@7 device:pump-17"}));
  EXPECT_NE(r.deviations[0].detail.find("dose 5000 mg, expected 5000 [iU] (the order, step 1)"),
            std::string::npos)
      << r.deviations[0].detail;
  EXPECT_NE(r.deviations[1].detail.find("rate 50 mL/h, expected 25 mL/h (the order, step 1)"),
            std::string::npos);
  EXPECT_NE(r.deviations[2].detail.find(
                "volume to be infused 500 mL, expected 252 mL (the nurse's programming, step 3)"),
            std::string::npos)
      << r.deviations[2].detail;
  EXPECT_NE(r.deviations[3].detail.find("rate 75 mL/h, expected 50 mL/h"), std::string::npos);

  auto o2 = w_.order("o-2");
  auto v2 = w_.verify("o-2", o2->id);
  InfusionWorld::Programmed wrong_drug;
  wrong_drug.drug = "insulin";
  ASSERT_TRUE(w_.program("o-2", v2->id, wrong_drug).ok());
  IncidentReport r2 = report("o-2");
  EXPECT_EQ(summary(r2), (std::vector<std::string>{"drug-mismatch@3 nurse:rn-jones"}));
  EXPECT_EQ(r2.deviations[0].detail, "drug 'insulin', expected 'heparin' (the order, step 1)");
}

TEST_F(IncidentTest, LimitsBypassAndAnotherPump) {
  auto pump18 = w_.register_pump("pump-18", "SN18");
  w_.deliver_and_install("pump-18");
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  ASSERT_TRUE(w_.program("o-1", v->id).ok());
  ASSERT_TRUE(w_.event("o-1", "hard-limit-stop",
                       {{"limit", InfusionWorld::limit("hard", 40)}, {"rate_ml_h", num(250)}})
                  .ok());
  ASSERT_TRUE(w_.event("o-1", "programming",
                       {{"drug", txt("heparin")},
                        {"rate_ml_h", num(25)},
                        {"vtbi_ml", num(250)},
                        {"library_bypassed", txt("yes")}},
                       &pump18)
                  .ok());
  ASSERT_TRUE(w_.event("o-1", "start", {}, &pump18).ok());
  ASSERT_TRUE(w_.event("o-1", "completion", {}, &pump18).ok());
  IncidentReport r = report("o-1");
  EXPECT_EQ(summary(r), (std::vector<std::string>{"hard-limit-stop@4 nurse:rn-jones",
                                                  "device-mismatch@5 device:pump-18",
                                                  "library-bypassed@5 nurse:rn-jones"}));
  EXPECT_NE(r.deviations[0].detail.find("pump pump-17 stopped the programming at its upper hard "
                                        "limit 40 mL/h; the pump was programmed by nurse rn-jones "
                                        "at step 3"),
            std::string::npos)
      << r.deviations[0].detail;
  EXPECT_NE(r.deviations[1].detail.find("signed by pump pump-18, but the nurse programmed pump-17"),
            std::string::npos);
  // pump-18 never installed firmware: nothing is said about it.
  EXPECT_FALSE(r.steps[4].firmware);
}

TEST_F(IncidentTest, AdvisoriesPublishedDuringOrAfterTheInfusion) {
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  ASSERT_TRUE(w_.program("o-1", v->id).ok());
  ASSERT_TRUE(w_.pump_programming("o-1").ok());
  ASSERT_TRUE(w_.advisory("ADV-DURING", "2.0.0").ok());
  ASSERT_TRUE(w_.event("o-1", "start").ok());
  ASSERT_TRUE(w_.event("o-1", "completion").ok());
  ASSERT_TRUE(w_.advisory("ADV-LATER", "2.0.0").ok());
  ASSERT_TRUE(w_.advisory("ADV-OTHER-VERSION", "1.0.0").ok());
  IncidentReport r = report("o-1");
  EXPECT_EQ(summary(r), (std::vector<std::string>{"firmware-under-advisory@3 maker:acme",
                                                  "firmware-under-advisory@5 maker:acme"}));
  // Sorted by step: the later advisory is attributed to the first step on the firmware.
  EXPECT_EQ(r.deviations[0].about, "ADV-LATER");
  EXPECT_EQ(r.deviations[0].timing, "later");
  EXPECT_NE(r.deviations[0].detail.find("published later, after the last step on this firmware "
                                        "(step 6)"),
            std::string::npos)
      << r.deviations[0].detail;
  EXPECT_EQ(r.deviations[1].about, "ADV-DURING");
  EXPECT_EQ(r.deviations[1].timing, "during");
  EXPECT_NE(r.deviations[1].detail.find("in force from step 5"), std::string::npos);
}

TEST_F(IncidentTest, FirmwareAtEachMomentUnknownAndUnapproved) {
  w_.release("2.1.0");
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  ASSERT_TRUE(w_.program("o-1", v->id).ok());
  ASSERT_TRUE(w_.event("o-1", "start").ok());
  w_.install_firmware(w_.pump, "2.1.0");
  ASSERT_TRUE(w_.event("o-1", "rate-change", {{"rate_ml_h", num(25)}}).ok());
  w_.install_firmware(w_.pump, "2.1.0", "rogue image");
  ASSERT_TRUE(w_.event("o-1", "completion").ok());
  IncidentReport r = report("o-1");
  ASSERT_EQ(r.steps.size(), 6u);
  EXPECT_EQ(r.steps[3].firmware->version, "2.0.0");
  EXPECT_EQ(r.steps[4].firmware->version, "2.1.0");
  EXPECT_EQ(r.steps[4].firmware->image_sha256, testutil::sha("image 2.1.0"));
  EXPECT_EQ(r.steps[5].firmware->image_sha256, testutil::sha("rogue image"));
  EXPECT_LT(r.steps[4].firmware->since_index, r.steps[4].index);
  EXPECT_GT(r.steps[4].firmware->since_index, r.steps[3].index);
  EXPECT_EQ(summary(r), (std::vector<std::string>{"firmware-unknown@6 maker:acme"}));
  EXPECT_NE(r.deviations[0].detail.find("image of version 2.1.0 differs from acme's release"),
            std::string::npos)
      << r.deviations[0].detail;
}

TEST_F(IncidentTest, UnapprovedFirmwareAndAPumpDecommissionedSince) {
  w_.release("3.0.0", "AP-900");
  w_.install_firmware(w_.pump, "3.0.0");
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  ASSERT_TRUE(w_.program("o-1", v->id).ok());
  ASSERT_TRUE(w_.event("o-1", "start").ok());
  ASSERT_TRUE(w_.event("o-1", "completion").ok());
  // Taken out of service afterwards: its key is revoked, its entries stay.
  ASSERT_TRUE(d_.submit(w_.biomed, kTypeDeviceDecommission,
                        map({{"device", txt("pump-17")}, {"reason", txt("recalled")}}))
                  .ok());
  IncidentReport r = report("o-1");
  EXPECT_EQ(summary(r), (std::vector<std::string>{"firmware-unapproved@4 maker:acme",
                                                  "signer-key-revoked@4 device:pump-17"}));
  EXPECT_NE(r.deviations[0].detail.find("version 3.0.0 is not approved for model AP-500"),
            std::string::npos)
      << r.deviations[0].detail;
  EXPECT_NE(
      r.deviations[1].detail.find("was revoked when the device was decommissioned: recalled on "),
      std::string::npos)
      << r.deviations[1].detail;
  EXPECT_EQ(r.steps[2].firmware->version, "3.0.0");
}

TEST_F(IncidentTest, OutdatedLibrariesAndPumpsNotInstalled) {
  w_.library("DL-8");
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  InfusionWorld::Programmed old;
  old.library = "DL-7";
  ASSERT_TRUE(w_.program("o-1", v->id, old).ok());
  ASSERT_TRUE(w_.pump_programming("o-1", 25, 250, "DL-7").ok());
  ASSERT_TRUE(w_.event("o-1", "start").ok());
  ASSERT_TRUE(w_.event("o-1", "completion").ok());
  IncidentReport r = report("o-1");
  EXPECT_EQ(summary(r), (std::vector<std::string>{"drug-library-outdated@3 hospital:st-mary",
                                                  "drug-library-outdated@4 hospital:st-mary"}));
  EXPECT_EQ(r.steps[2].drug_library, "DL-7");

  // Delivered to the hospital but never installed.
  auto pump20 = w_.register_pump("pump-20", "SN20");
  ASSERT_TRUE(d_.submit(w_.maker, kTypeDeviceCustody,
                        map({{"device", txt("pump-20")}, {"to", txt("st-mary")}}))
                  .ok());
  auto o2 = w_.order("o-2");
  auto v2 = w_.verify("o-2", o2->id);
  InfusionWorld::Programmed at20;
  at20.device = "pump-20";
  at20.library = "DL-8";
  ASSERT_TRUE(w_.program("o-2", v2->id, at20).ok());
  ASSERT_TRUE(w_.event("o-2", "start", {}, &pump20).ok());
  ASSERT_TRUE(w_.event("o-2", "completion", {}, &pump20).ok());
  EXPECT_EQ(summary(report("o-2")),
            (std::vector<std::string>{"device-not-installed@4 holder:st-mary"}));
}

TEST_F(IncidentTest, SequenceGapsClockSkewAndRevokedKeys) {
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  ASSERT_TRUE(w_.program("o-1", v->id).ok());
  // The pump signs a statement that never reaches the ledger: a gap.
  ASSERT_FALSE(w_.event("o-1", "explode").ok());
  ASSERT_TRUE(w_.event("o-1", "start").ok());
  // Signed, then held for 10 minutes before it was submitted.
  Bytes late = d_.sign(w_.pump, kTypeDeviceEvent,
                       map({{"event", txt("completion")}, {"order", txt("o-1")}}));
  d_.advance_ms(10 * 60 * 1000);
  ASSERT_TRUE(d_.submit(late).ok());
  // The nurse's key is revoked afterwards.
  ledger::KeyRevocation rev{w_.nurse.public_key().kid(), "left the hospital"};
  ASSERT_TRUE(
      d_.submit(d_.admin(), ledger::kTypeKeyRevoke, ledger::key_revocation_payload(rev)).ok());
  IncidentReport r = report("o-1");
  EXPECT_EQ(summary(r), (std::vector<std::string>{"signer-key-revoked@3 nurse:rn-jones",
                                                  "sequence-gap@4 device:pump-17",
                                                  "clock-skew@5 device:pump-17"}));
  EXPECT_NE(r.deviations[0].detail.find("was revoked by admin-1: left the hospital on "),
            std::string::npos)
      << r.deviations[0].detail;
  EXPECT_NE(r.deviations[0].detail.find("the entries it signed before stay valid"),
            std::string::npos);
  ASSERT_TRUE(r.steps[2].signer.revoked_index);
  EXPECT_EQ(r.deviations[1].detail,
            "pump-17 skipped 1 sequence number(s) before this entry (expected " +
                std::to_string(r.steps[3].sequence - 1) + ", got " +
                std::to_string(r.steps[3].sequence) + ")");
  EXPECT_NE(r.deviations[2].detail.find("registered 601 s later"), std::string::npos)
      << r.deviations[2].detail;
}

TEST_F(IncidentTest, UnknownOrdersAndBadIds) {
  auto missing = incident_report(d_.ledger(), "o-404");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find("order 'o-404' is not recorded"), std::string::npos);
  auto bad = incident_report(d_.ledger(), "o 1/..");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(IncidentTest, AReportExaminesAtMostItsLimitOfEntries) {
  auto o = w_.order("o-1");
  ASSERT_TRUE(o.ok());
  // One block of many status events naming the order.
  std::vector<ledger::Admitted> batch;
  for (size_t i = 0; i < kReportStepsMax + 5; ++i) {
    Bytes st =
        d_.sign(w_.pump, kTypeDeviceEvent, map({{"event", txt("status")}, {"order", txt("o-1")}}));
    auto a = d_.ledger().admit(st);
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    batch.push_back(std::move(a).value());
  }
  auto written = d_.ledger().append_block(std::move(batch), d_.now_ms() + 1000);
  ASSERT_TRUE(written.ok());
  IncidentReport r = report("o-1");
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.steps.size(), kReportStepsMax);
}

TEST_F(IncidentTest, APatientsOrdersComePageByPage) {
  const char* other = "pseudonym:ffeeddccbbaa99887766554433221100";
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(w_.order("o-" + std::to_string(i)).ok());
  ASSERT_TRUE(
      d_.submit(w_.prescriber, kTypeMedicationOrder, InfusionWorld::order_payload("o-x", other))
          .ok());
  std::vector<std::string> ids;
  uint64_t cursor = 0;
  for (int page = 0; page < 10; ++page) {
    auto p = patient_orders(d_.ledger(), testutil::kPatient, cursor, 2);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    EXPECT_LE(p->orders.size(), 2u);
    for (const auto& o : p->orders) ids.push_back(o.id);
    if (!p->next_cursor) break;
    cursor = *p->next_cursor;
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"o-0", "o-1", "o-2", "o-3", "o-4"}));
  auto bad = patient_orders(d_.ledger(), "John Smith", 0, 10);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace custos::domain
