// Patient-data statements through both stages of the policy: clinical
// records (hospital clinicians only, one per id, a commitment), record access
// (after the record, with a purpose of use), record erasure (an org-admin of
// a hospital that recorded content; once), the refs that make a patient's
// history queryable, the audit replaying it all, and the vault following the
// erasures it finds on the ledger.
#include <gtest/gtest.h>

#include "crypto/hash.h"
#include "domain/clinical.h"
#include "domain/vault.h"
#include "unit/domain/domain_fixture.h"

namespace custos::domain {
namespace {

using testutil::digest;
using testutil::map;
using testutil::txt;

const std::string kPatient = "pseudonym:00112233445566778899aabbccddeeff";
const std::string kOtherPatient = "pseudonym:ffeeddccbbaa99887766554433221100";

Hash256 commitment_of(std::string_view content) {
  return record_commitment(Bytes(kSaltBytes, 9), as_view(content));
}

cbor::Value record_payload(const std::string& patient, const std::string& record,
                           std::string_view content = "note") {
  return map({{"patient", txt(patient)},
              {"record", txt(record)},
              {"content_type", txt("text/plain")},
              {"commitment", digest(commitment_of(content))}});
}

cbor::Value access_payload(const std::string& patient, const std::string& record,
                           const std::string& purpose = "TREAT") {
  return map({{"patient", txt(patient)},
              {"record", txt(record)},
              {"purpose", txt(purpose)},
              {"who", txt("dr-house")}});
}

cbor::Value erasure_payload(const std::string& patient,
                            const std::string& reason = "patient-request") {
  return map({{"patient", txt(patient)}, {"reason", txt(reason)}});
}

class RecordsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_.add_org("st-mary", "hospital");
    d_.add_org("general", "hospital");
    d_.add_org("city-hie", "hie");
    d_.add_org("acme", "maker");
    nurse_ = d_.add_key("st-mary", ledger::kRoleNurse, "sm-nurse");
    doctor_ = d_.add_key("st-mary", ledger::kRolePrescriber, "sm-doctor");
    admin_ = d_.add_key("st-mary", ledger::kRoleOrgAdmin, "sm-admin");
    biomed_ = d_.add_key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    general_admin_ = d_.add_key("general", ledger::kRoleOrgAdmin, "gh-admin");
    general_nurse_ = d_.add_key("general", ledger::kRoleNurse, "gh-nurse");
    hie_auditor_ = d_.add_key("city-hie", ledger::kRoleAuditor, "hie-auditor");
    maker_nurse_ = d_.add_key("acme", ledger::kRoleNurse, "acme-nurse");
  }

  Result<ledger::Registered> submit(const crypto::PrivateKey& key, std::string_view type,
                                    const cbor::Value& payload,
                                    const std::string& subject = kPatient) {
    return d_.submit(key, type, payload, subject);
  }

  void expect_refused(const Result<ledger::Registered>& r, ErrorCode code,
                      const std::string& says) {
    ASSERT_FALSE(r.ok()) << "accepted; expected: " << says;
    EXPECT_EQ(r.status().code(), code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(says), std::string::npos) << r.status().to_string();
  }

  PatientState patient(const std::string& p) {
    auto bytes = d_.ledger().rule_record(patient_key(p));
    EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
    return PatientState::decode(*bytes).value();
  }

  testutil::TempDir dir_;
  testutil::DomainLedger d_{dir_.path()};
  crypto::PrivateKey nurse_, doctor_, admin_, biomed_, general_admin_, general_nurse_, hie_auditor_,
      maker_nurse_;
};

TEST_F(RecordsTest, AClinicianRecordsACommitment) {
  auto r = submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "note-1"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto bytes = d_.ledger().rule_record(clinical_record_key(kPatient, "note-1"));
  ASSERT_TRUE(bytes.ok());
  auto rec = ClinicalRecord::decode(*bytes);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->patient, kPatient);
  EXPECT_EQ(rec->record, "note-1");
  EXPECT_EQ(rec->content_type, "text/plain");
  EXPECT_EQ(rec->commitment, commitment_of("note"));
  EXPECT_EQ(rec->hospital, "st-mary");
  EXPECT_EQ(rec->author, nurse_.public_key().kid());
  EXPECT_EQ(rec->index, r->index);
  PatientState p = patient(kPatient);
  EXPECT_EQ(p.records, 1u);
  EXPECT_EQ(p.hospitals, std::vector<std::string>{"st-mary"});
  EXPECT_FALSE(p.erasure);
  auto entry = d_.ledger().entry(r->id);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->refs, (std::vector<std::string>{"patient:" + kPatient, "org:st-mary"}));

  ASSERT_TRUE(submit(general_nurse_, kTypeClinicalRecord, record_payload(kPatient, "gh-1")).ok());
  EXPECT_EQ(patient(kPatient).hospitals, (std::vector<std::string>{"st-mary", "general"}));
  EXPECT_EQ(patient(kPatient).records, 2u);
}

TEST_F(RecordsTest, RecordFieldsAreCheckedOneByOne) {
  struct Case {
    cbor::Value payload;
    const char* says;
  };
  Bytes short_digest(31, 1);
  const Case cases[] = {
      {record_payload("John Smith", "n"),
       "field 'patient': a patient is named only by a pseudonym"},
      {record_payload("pseudonym:00112233445566778899AABBCCDDEEFF", "n"), "field 'patient'"},
      {record_payload("pseudonym:0011", "n"), "field 'patient'"},
      {record_payload(kPatient, "bad id!"), "field 'record'"},
      {map({{"patient", txt(kPatient)},
            {"record", txt("n")},
            {"content_type", txt("PDF")},
            {"commitment", digest(commitment_of("x"))}}),
       "field 'content_type': must be a media type"},
      {map({{"patient", txt(kPatient)},
            {"record", txt("n")},
            {"content_type", txt("text/plain")},
            {"commitment", cbor::Value::bytes(short_digest)}}),
       "field 'commitment'"},
      {map({{"patient", txt(kPatient)}, {"record", txt("n")}, {"content_type", txt("text/plain")}}),
       "field 'commitment': is required"},
      {map({{"patient", txt(kPatient)},
            {"record", txt("n")},
            {"content_type", txt("text/plain")},
            {"commitment", digest(commitment_of("x"))},
            {"name", txt("John Smith")}}),
       "field 'name'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.says);
    const cbor::Value* p = c.payload.find("patient");
    expect_refused(submit(nurse_, kTypeClinicalRecord, c.payload, p ? p->as_text() : kPatient),
                   ErrorCode::kMalformed, c.says);
  }
  // The header is public too: its subject must be the pseudonym.
  expect_refused(submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "n"), "John Smith"),
                 ErrorCode::kMalformed, "CWT subject (sub) must be the patient's pseudonym");
}

TEST_F(RecordsTest, OnlyHospitalCliniciansRecord) {
  expect_refused(submit(biomed_, kTypeClinicalRecord, record_payload(kPatient, "n")),
                 ErrorCode::kPolicy, "may be signed only by a key with role prescriber");
  expect_refused(submit(admin_, kTypeClinicalRecord, record_payload(kPatient, "n")),
                 ErrorCode::kPolicy, "may be signed only by a key with role");
  expect_refused(submit(maker_nurse_, kTypeClinicalRecord, record_payload(kPatient, "n")),
                 ErrorCode::kPolicy, "must be signed by a key of a hospital organisation");
  EXPECT_TRUE(submit(doctor_, kTypeClinicalRecord, record_payload(kPatient, "n")).ok());
}

TEST_F(RecordsTest, ARecordIdIsRecordedOncePerPatient) {
  ASSERT_TRUE(submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "note-1")).ok());
  expect_refused(submit(doctor_, kTypeClinicalRecord, record_payload(kPatient, "note-1", "other")),
                 ErrorCode::kConflict, "is already recorded");
  EXPECT_TRUE(
      submit(nurse_, kTypeClinicalRecord, record_payload(kOtherPatient, "note-1"), kOtherPatient)
          .ok());
}

TEST_F(RecordsTest, AccessNeedsTheRecordAPurposeAndAReader) {
  expect_refused(submit(doctor_, kTypeRecordAccess, access_payload(kPatient, "note-1")),
                 ErrorCode::kNotFound, "is not recorded");
  ASSERT_TRUE(submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "note-1")).ok());
  auto r = submit(doctor_, kTypeRecordAccess, access_payload(kPatient, "note-1"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(d_.ledger().entry(r->id)->refs,
            (std::vector<std::string>{"patient:" + kPatient, "org:st-mary"}));
  // Another organisation's auditor may read too; the access names its org.
  auto hie = submit(hie_auditor_, kTypeRecordAccess, access_payload(kPatient, "note-1", "PUBHLTH"));
  ASSERT_TRUE(hie.ok()) << hie.status().to_string();
  EXPECT_EQ(d_.ledger().entry(hie->id)->refs,
            (std::vector<std::string>{"patient:" + kPatient, "org:city-hie"}));

  expect_refused(submit(doctor_, kTypeRecordAccess, access_payload(kPatient, "note-1", "CURIOUS")),
                 ErrorCode::kMalformed, "field 'purpose': must be one of");
  expect_refused(
      submit(
          doctor_, kTypeRecordAccess,
          map({{"patient", txt(kPatient)}, {"record", txt("note-1")}, {"purpose", txt("TREAT")}})),
      ErrorCode::kMalformed, "field 'who': is required");
  expect_refused(submit(biomed_, kTypeRecordAccess, access_payload(kPatient, "note-1")),
                 ErrorCode::kPolicy, "may be signed only by a key with role");
  expect_refused(submit(doctor_, kTypeRecordAccess, access_payload(kPatient, "note-1"), "sub"),
                 ErrorCode::kMalformed, "CWT subject");
}

TEST_F(RecordsTest, ErasureByAnOrgAdminOfARecordingHospitalOnce) {
  expect_refused(submit(admin_, kTypeRecordErasure, erasure_payload(kPatient)),
                 ErrorCode::kNotFound, "has no clinical records");
  auto rec = submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "note-1"));
  ASSERT_TRUE(rec.ok());
  expect_refused(submit(general_admin_, kTypeRecordErasure, erasure_payload(kPatient)),
                 ErrorCode::kPolicy, "'general' recorded no content for patient");
  expect_refused(submit(nurse_, kTypeRecordErasure, erasure_payload(kPatient)), ErrorCode::kPolicy,
                 "may be signed only by a key with role org-admin");
  expect_refused(submit(admin_, kTypeRecordErasure, erasure_payload(kPatient, "because")),
                 ErrorCode::kMalformed, "field 'reason': must be one of");

  auto erased = submit(admin_, kTypeRecordErasure, erasure_payload(kPatient, "consent-withdrawn"));
  ASSERT_TRUE(erased.ok()) << erased.status().to_string();
  PatientState p = patient(kPatient);
  ASSERT_TRUE(p.erasure);
  EXPECT_EQ(p.erasure->index, erased->index);
  EXPECT_EQ(p.erasure->org, "st-mary");
  EXPECT_EQ(p.erasure->reason, "consent-withdrawn");
  EXPECT_EQ(d_.ledger().entry(erased->id)->refs,
            (std::vector<std::string>{"patient:" + kPatient, "org:st-mary"}));

  expect_refused(submit(admin_, kTypeRecordErasure, erasure_payload(kPatient)),
                 ErrorCode::kConflict, "was erased");
  expect_refused(submit(doctor_, kTypeRecordAccess, access_payload(kPatient, "note-1")),
                 ErrorCode::kConflict, "was erased");
  expect_refused(submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "note-2")),
                 ErrorCode::kConflict, "was erased");
  // Nothing left the ledger: the record's entry and its commitment are there.
  EXPECT_TRUE(d_.ledger().entry(rec->id).ok());
  EXPECT_TRUE(d_.ledger().rule_record(clinical_record_key(kPatient, "note-1")).ok());
}

TEST_F(RecordsTest, TheAuditReplaysPatientStatements) {
  ASSERT_TRUE(submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "note-1")).ok());
  ASSERT_TRUE(submit(doctor_, kTypeRecordAccess, access_payload(kPatient, "note-1")).ok());
  ASSERT_TRUE(submit(admin_, kTypeRecordErasure, erasure_payload(kPatient)).ok());
  ledger::AuditReport report;
  Status s = d_.audit(dir_.path(), &report);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST_F(RecordsTest, TheVaultAppliesErasuresFoundOnTheLedger) {
  testutil::TempDir vault_dir("custos-vault");
  auto vault = Vault::open(vault_dir.path());
  ASSERT_TRUE(vault.ok()) << vault.status().to_string();
  const VaultRecord content{"text/plain", Bytes(kSaltBytes, 9), Bytes{'n', 'o', 't', 'e'}};
  ASSERT_TRUE(submit(nurse_, kTypeClinicalRecord, record_payload(kPatient, "note-1")).ok());
  ASSERT_TRUE(vault->put(kPatient, "note-1", content).ok());
  ASSERT_TRUE(vault->put(kOtherPatient, "note-1", content).ok());
  EXPECT_EQ(*vault->apply_erasures(d_.ledger()), 0u);

  // Registered (through another node, say) but not applied here yet.
  ASSERT_TRUE(submit(admin_, kTypeRecordErasure, erasure_payload(kPatient)).ok());
  VaultRecord out;
  EXPECT_EQ(*vault->get(kPatient, "note-1", &out), VaultLookup::kFound);
  auto applied = vault->apply_erasures(d_.ledger());
  ASSERT_TRUE(applied.ok()) << applied.status().to_string();
  EXPECT_EQ(*applied, 1u);
  EXPECT_EQ(*vault->get(kPatient, "note-1", &out), VaultLookup::kErased);
  EXPECT_EQ(*vault->get(kOtherPatient, "note-1", &out), VaultLookup::kFound);
  // The position is kept: the next sweep looks only at newer entries.
  EXPECT_EQ(*vault->apply_erasures(d_.ledger()), 0u);
  auto reopened = Vault::open(vault_dir.path());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(*reopened->apply_erasures(d_.ledger()), 0u);
}

// The per-patient limit, against a state that already holds the maximum
// (registering 4096 records one block at a time would only be slow).
class MapState : public ledger::RuleState {
 public:
  Result<std::optional<Bytes>> get(ByteView key) const override {
    auto it = m_.find(Bytes(key.begin(), key.end()));
    if (it == m_.end()) return std::optional<Bytes>();
    return std::optional<Bytes>(it->second);
  }
  void put(ByteView key, ByteView value) override {
    m_[Bytes(key.begin(), key.end())] = Bytes(value.begin(), value.end());
  }
  void remove(ByteView key) override { m_.erase(Bytes(key.begin(), key.end())); }

 private:
  std::map<Bytes, Bytes> m_;
};

TEST(RecordsLimitTest, APatientHoldsAtMostTheRecordLimit) {
  MapState state;
  Org org{"st-mary", "St Mary", kOrgHospital, "", 1};
  state.put(org_key("st-mary"), org.encode());
  PatientState full;
  full.patient = kPatient;
  full.records = kRecordsPerPatientMax;
  full.hospitals = {"st-mary"};
  state.put(patient_key(kPatient), full.encode());

  crypto::PrivateKey nurse = testutil::new_key();
  ledger::KeyState signer{nurse.public_key(), "nurse", ledger::kRoleNurse};
  signer.org = "st-mary";
  ledger::KeyRegistry keys;
  testutil::Fields f;
  f.content_type = std::string(kTypeClinicalRecord);
  f.subject = kPatient;
  f.issued_at_s = 1767225600;
  f.payload = cbor::encode(record_payload(kPatient, "one-more"));
  auto st = cose::parse_statement(testutil::sign(nurse, 1, f));
  ASSERT_TRUE(st.ok());
  DomainRules rules;
  ASSERT_TRUE(rules.check(*st, signer).ok());
  ledger::RuleContext ctx{10, 1767225600000, &signer, &keys};
  auto out = rules.apply(*st, ctx, state);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), ErrorCode::kTooLarge);
  EXPECT_NE(out.status().message().find("already has 4096 records"), std::string::npos);

  full.records = kRecordsPerPatientMax - 1;
  state.put(patient_key(kPatient), full.encode());
  EXPECT_TRUE(rules.apply(*st, ctx, state).ok());
}

}  // namespace
}  // namespace custos::domain
