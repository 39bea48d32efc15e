// The domain rules' foundation: organisations, keys that belong to them,
// organisation administrators, key rotation, the payload reader's field
// rules, identifier check digits, refs and flags on entries, and the audit
// replaying the rules.
#include <gtest/gtest.h>

#include "domain/payload.h"
#include "unit/domain/domain_fixture.h"

namespace custos::domain {
namespace {

using testutil::DomainLedger;
using testutil::map;
using testutil::num;
using testutil::txt;

class FoundationTest : public ::testing::Test {
 protected:
  testutil::TempDir dir_;
  DomainLedger d_{dir_.path()};
};

TEST_F(FoundationTest, AdminRegistersAnOrganisationOnce) {
  auto r = d_.submit(d_.admin(), kTypeOrgRegister,
                     map({{"id", txt("st-mary")},
                          {"name", txt("St Mary")},
                          {"kind", txt("hospital")},
                          {"gln", txt("4012345000009")}}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto rec = d_.ledger().rule_record(org_key("st-mary"));
  ASSERT_TRUE(rec.ok());
  auto org = Org::decode(*rec);
  ASSERT_TRUE(org.ok());
  EXPECT_EQ(org->kind, kOrgHospital);
  EXPECT_EQ(org->gln, "4012345000009");
  auto entry = d_.ledger().entry(r->id);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->refs, std::vector<std::string>{"org:st-mary"});

  auto again = d_.submit(d_.admin(), kTypeOrgRegister,
                         map({{"id", txt("st-mary")}, {"name", txt("X")}, {"kind", txt("maker")}}));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kConflict);
  EXPECT_NE(again.status().message().find("already registered"), std::string::npos);
}

TEST_F(FoundationTest, OrganisationFieldsAreCheckedOneByOne) {
  struct Case {
    cbor::Value payload;
    const char* says;
  };
  const Case cases[] = {
      {map({{"id", txt("Bad Id")}, {"name", txt("n")}, {"kind", txt("hospital")}}), "field 'id'"},
      {map({{"id", txt("a")}, {"name", txt("n")}, {"kind", txt("castle")}}),
       "field 'kind': must be one of"},
      {map({{"id", txt("a")}, {"kind", txt("maker")}}), "field 'name': is required"},
      {map({{"id", txt("a")},
            {"name", txt("n")},
            {"kind", txt("maker")},
            {"gln", txt("4012345000008")}}),
       "GLN check digit is 8, expected 9"},
      {map({{"id", txt("a")}, {"name", txt("n")}, {"kind", txt("maker")}, {"color", txt("red")}}),
       "field 'color' is not part of this statement"},
      {cbor::Value::array({}), "payload must be a CBOR map"},
  };
  for (const auto& c : cases) {
    auto r = d_.submit(d_.admin(), kTypeOrgRegister, c.payload);
    ASSERT_FALSE(r.ok()) << c.says;
    EXPECT_EQ(r.status().code(), ErrorCode::kMalformed);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(d_.ledger().head().log_size, 0u);  // nothing stored
}

TEST_F(FoundationTest, OnlyAnAdminRegistersOrganisations) {
  d_.add_org("acme", "maker");
  auto biomed = d_.add_key("acme", ledger::kRoleBiomed | ledger::kRoleOrgAdmin, "eng");
  auto r = d_.submit(biomed, kTypeOrgRegister,
                     map({{"id", txt("x")}, {"name", txt("x")}, {"kind", txt("hospital")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kPolicy);
  EXPECT_NE(r.status().message().find("role admin"), std::string::npos) << r.status().message();
}

TEST_F(FoundationTest, KeysOfAnUnknownOrganisationAreRefused) {
  auto key = testutil::new_key();
  ledger::KeyRegistration reg{key.public_key().spki_der(), ledger::kRoleNurse, "n", "nowhere"};
  auto r = d_.submit(d_.admin(), ledger::kTypeKeyRegister, ledger::key_registration_payload(reg));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("'nowhere' is not registered"), std::string::npos);
}

TEST_F(FoundationTest, OrgAdminManagesOnlyItsOwnOrganisation) {
  d_.add_org("st-mary", "hospital");
  d_.add_org("acme", "maker");
  auto org_admin = d_.add_key("st-mary", ledger::kRoleOrgAdmin, "it");
  auto nurse = testutil::new_key();
  ledger::KeyRegistration reg{nurse.public_key().spki_der(), ledger::kRoleNurse, "nurse",
                              "st-mary"};
  auto ok = d_.submit(org_admin, ledger::kTypeKeyRegister, ledger::key_registration_payload(reg));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();

  auto other = testutil::new_key();
  ledger::KeyRegistration foreign{other.public_key().spki_der(), ledger::kRoleBiomed, "x", "acme"};
  auto refused =
      d_.submit(org_admin, ledger::kTypeKeyRegister, ledger::key_registration_payload(foreign));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kPolicy);

  ledger::KeyRegistration admin_role{other.public_key().spki_der(), ledger::kRoleAdmin, "x",
                                     "st-mary"};
  auto escalated =
      d_.submit(org_admin, ledger::kTypeKeyRegister, ledger::key_registration_payload(admin_role));
  ASSERT_FALSE(escalated.ok());
  EXPECT_NE(escalated.status().message().find("consortium administrator"), std::string::npos);

  // Revoking a key of another organisation is refused at execution.
  auto acme_key = d_.add_key("acme", ledger::kRoleBiomed, "acme-eng");
  auto revoke_foreign =
      d_.submit(org_admin, ledger::kTypeKeyRevoke,
                ledger::key_revocation_payload({acme_key.public_key().kid(), "x"}));
  ASSERT_FALSE(revoke_foreign.ok());
  EXPECT_EQ(revoke_foreign.status().code(), ErrorCode::kPolicy);
  auto revoke_own = d_.submit(org_admin, ledger::kTypeKeyRevoke,
                              ledger::key_revocation_payload({nurse.public_key().kid(), "left"}));
  EXPECT_TRUE(revoke_own.ok()) << revoke_own.status().to_string();
}

TEST_F(FoundationTest, RotationHandsNameOrgAndRolesToTheSuccessor) {
  d_.add_org("st-mary", "hospital");
  auto old_key = d_.add_key("st-mary", ledger::kRoleNurse, "nurse-ann");
  // A statement before the rotation stays valid (the audit below replays it).
  auto before = d_.submit(old_key, ledger::kTypeCbor, map({{"x", txt("y")}}));
  EXPECT_FALSE(before.ok());  // nurses have no issuer role: generic statements are refused
  auto next = testutil::new_key(crypto::Algorithm::kES256);
  auto rotated = d_.submit(
      old_key, ledger::kTypeKeyRotate,
      ledger::key_rotation_payload(ledger::KeyRotation{next.public_key().spki_der(), "yearly"}));
  ASSERT_TRUE(rotated.ok()) << rotated.status().to_string();
  auto old_state = d_.ledger().key(old_key.public_key().kid());
  auto new_state = d_.ledger().key(next.public_key().kid());
  ASSERT_TRUE(old_state.ok() && new_state.ok());
  EXPECT_TRUE(old_state->revoked());
  EXPECT_EQ(old_state->successor, next.public_key().kid());
  EXPECT_EQ(new_state->name, "nurse-ann");
  EXPECT_EQ(new_state->org, "st-mary");
  EXPECT_EQ(new_state->roles, ledger::kRoleNurse);
  // The old key can sign nothing more.
  auto after = d_.submit(old_key, ledger::kTypeKeyRotate,
                         ledger::key_rotation_payload(ledger::KeyRotation{
                             testutil::new_key().public_key().spki_der(), "again"}));
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), ErrorCode::kRevokedKey);

  ledger::AuditReport report;
  Status audit = d_.audit(dir_.path(), &report);
  EXPECT_TRUE(audit.ok()) << audit.to_string();
  EXPECT_GT(report.rule_records, 0u);
}

TEST_F(FoundationTest, ClockSkewIsFlaggedNotRefused) {
  d_.add_org("st-mary", "hospital");
  testutil::Fields f;
  f.content_type = std::string(kTypeOrgRegister);
  f.issuer = "admin-1";
  f.issued_at_s = d_.now_ms() / 1000 - 3600;  // an hour behind
  f.payload = cbor::encode(map({{"id", txt("late")}, {"name", txt("n")}, {"kind", txt("hie")}}));
  Bytes st = testutil::sign(d_.admin(), 100, f);
  auto r = d_.submit(st);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->flags.size(), 1u);
  EXPECT_EQ(r->flags[0].rfind("clock-skew: ", 0), 0u) << r->flags[0];
  ledger::Query q;
  q.flag = "clock-skew";
  auto page = d_.ledger().query(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].id, r->id);
}

TEST_F(FoundationTest, AuditFindsATamperedDomainRecord) {
  d_.add_org("st-mary", "hospital");
  {
    // Change the stored organisation behind the ledger's back.
    auto& store = d_.ledger().store();
    storage::WriteBatch wb;
    Org forged{"st-mary", "Forged", kOrgMaker, "", 1};
    wb.put(storage::Column::kDomain, org_key("st-mary"), forged.encode());
    ASSERT_TRUE(store.write(wb, true).ok());
  }
  ledger::AuditReport report;
  Status audit = d_.audit(dir_.path(), &report);
  ASSERT_FALSE(audit.ok());
  EXPECT_NE(audit.message().find("differs from the replay"), std::string::npos) << audit.message();
}

TEST(PayloadTest, Gs1CheckDigits) {
  EXPECT_TRUE(check_gtin("00614141999996").ok());  // GS1's own example
  EXPECT_TRUE(check_gtin("09506000134352").ok());
  EXPECT_FALSE(check_gtin("09506000134353").ok());
  EXPECT_FALSE(check_gtin("0950600013435").ok());  // 13 digits: check digit wrong for GTIN-13
  EXPECT_FALSE(check_gtin("0950600013435x").ok());
  EXPECT_TRUE(check_gln("4012345000009").ok());
  EXPECT_FALSE(check_gln("401234500000").ok());
}

TEST(PayloadTest, DatesIdsAndPseudonyms) {
  EXPECT_TRUE(check_date("2024-02-29").ok());
  EXPECT_FALSE(check_date("2023-02-29").ok());
  EXPECT_FALSE(check_date("2023-13-01").ok());
  EXPECT_FALSE(check_date("23-01-01").ok());
  EXPECT_TRUE(check_id("pump-17").ok());
  EXPECT_TRUE(check_id("urn:x/1.2_3").ok());
  EXPECT_FALSE(check_id("-lead").ok());
  EXPECT_FALSE(check_id("has space").ok());
  EXPECT_FALSE(check_id(std::string(65, 'a')).ok());
  EXPECT_TRUE(check_pseudonym("pseudonym:0123456789abcdef").ok());
  EXPECT_FALSE(check_pseudonym("pseudonym:0123456789ABCDEF").ok());
  EXPECT_FALSE(check_pseudonym("John Smith").ok());
  EXPECT_FALSE(check_pseudonym("pseudonym:0123").ok());
}

TEST(PayloadTest, NumbersAndListsHaveRanges) {
  Bytes payload = cbor::encode(map({{"rate", num(2500)},
                                    {"n", cbor::Value::integer(-3)},
                                    {"models", testutil::texts({"a", "a"})}}));
  auto p = PayloadReader::open(payload, "test");
  ASSERT_TRUE(p.ok());
  auto rate = p->number("rate", 0, 2000);
  ASSERT_FALSE(rate.ok());
  EXPECT_NE(rate.status().message().find("field 'rate': must be a number from 0 to 2000"),
            std::string::npos);
  EXPECT_FALSE(p->uint("n", 0, 10).ok());
  auto models = p->text_list("models", 4, 8);
  ASSERT_FALSE(models.ok());
  EXPECT_NE(models.status().message().find("listed twice"), std::string::npos);
}

}  // namespace
}  // namespace custos::domain
