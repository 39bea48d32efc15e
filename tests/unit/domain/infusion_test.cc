// The infusion chain's statements through both stages of the policy: the
// medication order, the pharmacy verification and the nurse's pump
// programming; every field rule, every signer rule, every reference rule
// refused with the field named and nothing stored; out-of-order steps
// accepted and flagged; the audit replaying it all.
#include <gtest/gtest.h>

#include "unit/domain/infusion_fixture.h"

namespace custos::domain {
namespace {

using testutil::digest;
using testutil::InfusionWorld;
using testutil::map;
using testutil::num;
using testutil::txt;

class InfusionTest : public ::testing::Test {
 protected:
  void SetUp() override { w_.build(); }

  MedicationOrder order_record(const std::string& id) {
    auto bytes = d_.ledger().rule_record(order_key(id));
    EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
    auto o = MedicationOrder::decode(*bytes);
    EXPECT_TRUE(o.ok()) << o.status().to_string();
    return *o;
  }

  // The payload with one field replaced (or removed when `value` is null).
  static cbor::Value with(cbor::Value payload, const std::string& field, cbor::Value value) {
    cbor::Map out;
    bool replaced = false;
    for (auto& [k, v] : payload.as_map()) {
      if (k.as_text() == field) {
        replaced = true;
        if (!value.is(cbor::Type::kNull)) out.emplace_back(k, value);
      } else {
        out.emplace_back(k, v);
      }
    }
    if (!replaced) out.emplace_back(cbor::text(field), value);
    return cbor::Value::map(std::move(out));
  }

  struct Refusal {
    const crypto::PrivateKey* signer;
    std::string_view type;
    cbor::Value payload;
    ErrorCode code;
    std::string says;
  };

  // Each case is refused with its code and message, and stores nothing.
  void expect_refused(const std::vector<Refusal>& cases) {
    for (const auto& c : cases) {
      const uint64_t size = d_.ledger().head().log_size;
      auto r = d_.submit(*c.signer, c.type, c.payload);
      ASSERT_FALSE(r.ok()) << c.says;
      EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
      EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
      EXPECT_EQ(d_.ledger().head().log_size, size) << "a refusal stored something: " << c.says;
    }
  }

  std::vector<std::string> codes(const std::vector<std::string>& flags) {
    std::vector<std::string> out;
    for (const auto& f : flags) out.push_back(f.substr(0, f.find(':')));
    return out;
  }

  testutil::TempDir dir_;
  testutil::DomainLedger d_{dir_.path()};
  InfusionWorld w_{d_};
};

TEST_F(InfusionTest, APrescriberRecordsAnOrderForAPseudonymousPatient) {
  auto r = w_.order("o-1");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  MedicationOrder o = order_record("o-1");
  EXPECT_EQ(o.hospital, "st-mary");
  EXPECT_EQ(o.patient, testutil::kPatient);
  EXPECT_EQ(o.drug, "heparin");
  EXPECT_EQ(o.drug_code, "RxNorm:5224");
  EXPECT_EQ(o.dose.value, 5000);
  EXPECT_EQ(o.dose.unit, "[iU]");
  EXPECT_EQ(o.rate.value, 25);
  EXPECT_EQ(o.rate.unit, "mL/h");
  EXPECT_EQ(o.vtbi_ml, 250);
  EXPECT_EQ(o.route, "intravenous");
  EXPECT_EQ(o.care_area, "icu");
  EXPECT_EQ(o.prescriber, w_.prescriber.public_key().kid());
  EXPECT_EQ(o.entry, r->id);
  EXPECT_EQ(o.index, r->index);
  EXPECT_EQ(o.status, OrderStatus::kOrdered);
  auto e = d_.ledger().entry(r->id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->refs,
            (std::vector<std::string>{"order:o-1", std::string("patient:") + testutil::kPatient,
                                      "org:st-mary"}));
  EXPECT_TRUE(e->flags.empty());
}

TEST_F(InfusionTest, OrderFieldsAreCheckedOneByOne) {
  const cbor::Value good = InfusionWorld::order_payload("o-2");
  const auto* p = &w_.prescriber;
  const auto t = kTypeMedicationOrder;
  const auto bad = ErrorCode::kMalformed;
  expect_refused({
      {p, t, with(good, "patient", txt("John Smith")), bad,
       "field 'patient': a patient is named only by a pseudonym"},
      {p, t, with(good, "patient", txt("pseudonym:00112233445566778899AABBCCDDEEFF")), bad,
       "field 'patient': a patient is named only by a pseudonym"},
      {p, t, with(good, "patient", txt("pseudonym:0011")), bad, "field 'patient'"},
      {p, t, with(good, "patient_name", txt("John Smith")), bad,
       "field 'patient_name' is not part of this statement"},
      {p, t, with(good, "order", txt("o 2")), bad, "field 'order': an id may hold only"},
      {p, t, with(good, "drug", cbor::Value::null()), bad, "field 'drug': is required"},
      {p, t, with(good, "drug", txt("")), bad, "field 'drug': must be 1 to 128 bytes long"},
      {p, t, with(good, "dose", map({{"value", num(5)}, {"unit", txt("spoons")}})), bad,
       "field 'dose.unit': must be one of: mg, ug"},
      {p, t, with(good, "dose", map({{"value", num(0)}, {"unit", txt("mg")}})), bad,
       "field 'dose.value': must be above 0"},
      {p, t, with(good, "dose", txt("5 mg")), bad, "field 'dose': must be a map"},
      {p, t, with(good, "dose", map({{"value", num(5)}, {"unit", txt("mg")}, {"per", txt("x")}})),
       bad, "field 'dose.per' is not part of this statement"},
      {p, t, with(good, "rate", map({{"value", num(2)}, {"unit", txt("mg/h")}})), bad,
       "field 'rate.unit': must be one of: mL/h"},
      {p, t, with(good, "rate", map({{"value", num(5000)}, {"unit", txt("mL/h")}})), bad,
       "field 'rate.value': must be a number from 0 to 2000"},
      {p, t, with(good, "vtbi_ml", num(0)), bad, "field 'vtbi_ml': must be above 0"},
      {p, t, with(good, "vtbi_ml", num(20000)), bad,
       "field 'vtbi_ml': must be a number from 0 to 10000"},
      {p, t, with(good, "vtbi_ml", txt("250")), bad, "field 'vtbi_ml': must be a number"},
      {p, t, with(good, "route", txt("oral")), bad, "field 'route': must be one of: intravenous"},
      {p, t, with(good, "care_area", cbor::Value::null()), bad, "field 'care_area': is required"},
      {p, t, with(good, "drug_code", txt(std::string(65, 'x'))), bad, "field 'drug_code'"},
  });
}

TEST_F(InfusionTest, OnlyAPrescriberOfAHospitalOrdersAndOrderIdsAreUnique) {
  auto pharmacy_prescriber = d_.add_key("medrx", ledger::kRolePrescriber, "medrx-doc");
  auto no_org = d_.add_key("", ledger::kRolePrescriber, "freelancer");
  ASSERT_TRUE(w_.order("o-1").ok());
  const cbor::Value payload = InfusionWorld::order_payload("o-2");
  const auto t = kTypeMedicationOrder;
  expect_refused({
      {&w_.nurse, t, payload, ErrorCode::kPolicy,
       "medication order may be signed only by a key with role prescriber"},
      {&pharmacy_prescriber, t, payload, ErrorCode::kPolicy,
       "must be signed by a key of a hospital organisation; this key belongs to 'medrx', a "
       "pharmacy"},
      {&no_org, t, payload, ErrorCode::kPolicy, "this key belongs to no organisation"},
      {&w_.other_prescriber, t, InfusionWorld::order_payload("o-1"), ErrorCode::kConflict,
       "field 'order': 'o-1' is already recorded"},
  });
}

TEST_F(InfusionTest, APharmacistVerifiesTheOrderItNames) {
  auto o = w_.order("o-1");
  ASSERT_TRUE(o.ok());
  // The entry id may be written as 64 hex digits too.
  auto v = d_.submit(w_.pharmacist, kTypePharmacyVerification,
                     map({{"order", txt("o-1")},
                          {"prev", txt(to_hex(o->id))},
                          {"outcome", txt("verified")},
                          {"reason", txt("dose within protocol")}}));
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_TRUE(v->flags.empty());
  MedicationOrder rec = order_record("o-1");
  EXPECT_EQ(rec.status, OrderStatus::kVerified);
  EXPECT_EQ(rec.verification_entry, v->id);
  auto e = d_.ledger().entry(v->id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->refs, (std::vector<std::string>{"order:o-1", "org:st-mary"}));

  // An outside pharmacy may verify too; a later rejection is recorded.
  auto rejected = d_.submit(w_.outside_pharmacist, kTypePharmacyVerification,
                            map({{"order", txt("o-1")},
                                 {"prev", digest(o->id)},
                                 {"outcome", txt("rejected")},
                                 {"reason", txt("duplicate therapy")}}));
  ASSERT_TRUE(rejected.ok()) << rejected.status().to_string();
  EXPECT_EQ(order_record("o-1").status, OrderStatus::kRejected);
}

TEST_F(InfusionTest, VerificationRefusals) {
  auto o = w_.order("o-1");
  ASSERT_TRUE(o.ok());
  auto other = w_.order("o-2");
  ASSERT_TRUE(other.ok());
  const auto t = kTypePharmacyVerification;
  const auto* ph = &w_.pharmacist;
  expect_refused({
      {ph, t, InfusionWorld::verification_payload("o-9", o->id), ErrorCode::kNotFound,
       "field 'order': order 'o-9' is not recorded"},
      {ph, t, InfusionWorld::verification_payload("o-1", other->id), ErrorCode::kNotFound,
       "field 'prev': " + to_hex(other->id).substr(0, 16) + "... is not the entry of order 'o-1'"},
      {ph, t, InfusionWorld::verification_payload("o-1", testutil::sha("nothing")),
       ErrorCode::kNotFound, "is not the entry of order 'o-1'"},
      {ph, t, map({{"order", txt("o-1")}, {"prev", txt("xyz")}, {"outcome", txt("verified")}}),
       ErrorCode::kMalformed, "field 'prev': must be an entry id: a 32-byte bstr or 64 hex digits"},
      {ph, t,
       map({{"order", txt("o-1")},
            {"prev", cbor::Value::bytes(Bytes(31, 1))},
            {"outcome", txt("verified")}}),
       ErrorCode::kMalformed, "field 'prev': must be an entry id"},
      {ph, t, map({{"order", txt("o-1")}, {"outcome", txt("verified")}}), ErrorCode::kMalformed,
       "field 'prev': is required"},
      {ph, t, InfusionWorld::verification_payload("o-1", o->id, "maybe"), ErrorCode::kMalformed,
       "field 'outcome': must be one of: verified, rejected"},
      {ph, t,
       map({{"order", txt("o-1")},
            {"prev", digest(o->id)},
            {"outcome", txt("verified")},
            {"reason", txt(std::string(600, 'r'))}}),
       ErrorCode::kMalformed, "field 'reason': must be 1 to 512 bytes long"},
      {&w_.other_pharmacist, t, InfusionWorld::verification_payload("o-1", o->id),
       ErrorCode::kPolicy,
       "order 'o-1' belongs to 'st-mary', not to the signer's organisation 'st-luke'"},
      {&w_.nurse, t, InfusionWorld::verification_payload("o-1", o->id), ErrorCode::kPolicy,
       "may be signed only by a key with role pharmacist"},
  });
  EXPECT_EQ(order_record("o-1").status, OrderStatus::kOrdered);
}

TEST_F(InfusionTest, ANurseProgramsAPumpTheHospitalHolds) {
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  ASSERT_TRUE(v.ok());
  auto p = w_.program("o-1", v->id);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_TRUE(p->flags.empty());
  MedicationOrder rec = order_record("o-1");
  EXPECT_EQ(rec.status, OrderStatus::kProgrammed);
  EXPECT_EQ(rec.programming_entry, p->id);
  EXPECT_EQ(rec.device, "pump-17");
  auto e = d_.ledger().entry(p->id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->refs, (std::vector<std::string>{"order:o-1", "device:pump-17", "org:st-mary"}));
  // A later verification is accepted, flagged, and does not undo the status.
  auto late = w_.verify("o-1", o->id);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(codes(late->flags), std::vector<std::string>{"out-of-order"});
  EXPECT_EQ(order_record("o-1").status, OrderStatus::kProgrammed);
}

TEST_F(InfusionTest, ProgrammingWithoutOrAgainstVerificationIsAcceptedAndFlagged) {
  auto o = w_.order("o-1");
  auto unverified = w_.program("o-1", o->id);
  ASSERT_TRUE(unverified.ok()) << unverified.status().to_string();
  EXPECT_EQ(codes(unverified->flags), std::vector<std::string>{"out-of-order"});
  EXPECT_NE(unverified->flags[0].find("without pharmacy verification"), std::string::npos);

  auto o2 = w_.order("o-2");
  auto rejected = w_.verify("o-2", o2->id, "rejected");
  ASSERT_TRUE(rejected.ok());
  EXPECT_EQ(order_record("o-2").status, OrderStatus::kRejected);
  auto after = w_.program("o-2", rejected->id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(codes(after->flags), std::vector<std::string>{"out-of-order"});
  EXPECT_NE(after->flags[0].find("after the pharmacy rejected it"), std::string::npos);

  auto o3 = w_.order("o-3");
  auto v3 = w_.verify("o-3", o3->id);
  InfusionWorld::Programmed old;
  old.library = "DL-6";
  auto outdated = w_.program("o-3", v3->id, old);
  ASSERT_TRUE(outdated.ok());
  EXPECT_EQ(codes(outdated->flags), std::vector<std::string>{"drug-library-outdated"});
  EXPECT_NE(outdated->flags[0].find("programmed with DL-6; st-mary's current library is DL-7"),
            std::string::npos);
}

TEST_F(InfusionTest, ProgrammingRefusals) {
  auto o = w_.order("o-1");
  auto v = w_.verify("o-1", o->id);
  auto first = w_.program("o-1", v->id);
  ASSERT_TRUE(first.ok());
  auto o2 = w_.order("o-2");
  // A pump still held by its maker, and one decommissioned by the hospital.
  w_.register_pump("pump-18", "SN18");
  w_.register_pump("pump-19", "SN19");
  w_.deliver_and_install("pump-19");
  ASSERT_TRUE(d_.submit(w_.biomed, kTypeDeviceDecommission,
                        map({{"device", txt("pump-19")}, {"reason", txt("dropped")}}))
                  .ok());
  InfusionWorld::Programmed at18, at19, unknown_pump, bad_unit;
  at18.device = "pump-18";
  at19.device = "pump-19";
  unknown_pump.device = "pump-99";
  bad_unit.dose_unit = "spoons";
  const auto t = kTypePumpProgramming;
  const auto* n = &w_.nurse;
  expect_refused({
      {n, t, InfusionWorld::programming_payload("o-9", v->id), ErrorCode::kNotFound,
       "field 'order': order 'o-9' is not recorded"},
      {n, t, InfusionWorld::programming_payload("o-1", o2->id), ErrorCode::kNotFound,
       "field 'prev': " + to_hex(o2->id).substr(0, 16) +
           "... is neither the entry of order 'o-1' nor of one of its verifications"},
      {n, t, InfusionWorld::programming_payload("o-1", first->id), ErrorCode::kNotFound,
       "field 'prev'"},
      {n, t, InfusionWorld::programming_payload("o-1", v->id, unknown_pump), ErrorCode::kNotFound,
       "field 'device': 'pump-99' is not registered"},
      {n, t, InfusionWorld::programming_payload("o-1", v->id, at18), ErrorCode::kPolicy,
       "field 'device': 'pump-18' is held by 'acme', not by 'st-mary'"},
      {n, t, InfusionWorld::programming_payload("o-1", v->id, at19), ErrorCode::kConflict,
       "field 'device': 'pump-19' is decommissioned"},
      {n, t, InfusionWorld::programming_payload("o-1", v->id, bad_unit), ErrorCode::kMalformed,
       "field 'dose.unit'"},
      {n, t,
       with(InfusionWorld::programming_payload("o-1", v->id), "drug_library", cbor::Value::null()),
       ErrorCode::kMalformed, "field 'drug_library': is required"},
      {n, t,
       with(InfusionWorld::programming_payload("o-1", v->id), "rate",
            map({{"value", num(25)}, {"unit", txt("mL/min")}})),
       ErrorCode::kMalformed, "field 'rate.unit': must be one of: mL/h"},
      {n, t, with(InfusionWorld::programming_payload("o-1", v->id), "device", txt("pump 17")),
       ErrorCode::kMalformed, "field 'device': an id may hold only"},
      {n, t,
       with(InfusionWorld::programming_payload("o-1", v->id), "patient", txt(testutil::kPatient)),
       ErrorCode::kMalformed, "field 'patient' is not part of this statement"},
      {&w_.other_nurse, t, InfusionWorld::programming_payload("o-1", v->id), ErrorCode::kPolicy,
       "order 'o-1' belongs to 'st-mary', not to the signer's organisation 'st-luke'"},
      {&w_.pharmacist, t, InfusionWorld::programming_payload("o-1", v->id), ErrorCode::kPolicy,
       "may be signed only by a key with role nurse"},
  });
}

TEST_F(InfusionTest, TheAuditReplaysTheChainAndItsRecords) {
  w_.clean_chain("o-1");
  auto o = w_.order("o-2");
  ASSERT_TRUE(w_.program("o-2", o->id).ok());
  ledger::AuditReport report;
  Status audit = d_.audit(dir_.path(), &report);
  EXPECT_TRUE(audit.ok()) << audit.to_string();
}

}  // namespace
}  // namespace custos::domain
