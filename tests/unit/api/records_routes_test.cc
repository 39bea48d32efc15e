// The patient-record routes (routes_records.cc) over a real node: a record
// stored after its statement is registered, reads served only after they
// are logged and only once per access statement, erasure answered 410 from
// then on (also when registered without the route, as through another node),
// the order of operations when a step is missing, and every refusal as an
// RFC 9457 problem that stores nothing.
#include <gtest/gtest.h>

#include <filesystem>

#include "cose/receipt.h"
#include "domain/clinical.h"
#include "domain/vault.h"
#include "unit/api/domain_router_fixture.h"

namespace custos::api {
namespace {

using nlohmann::json;
using testutil::cmap;

const std::string kPatient = "pseudonym:0123456789abcdef0123456789abcdef";

std::string str(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

class RecordRoutesTest : public testutil::DomainRouterTest {
 protected:
  void SetUp() override {
    DomainRouterTest::SetUp();
    add_org("st-mary", "hospital");
    add_org("general", "hospital");
    nurse_ = add_key("st-mary", ledger::kRoleNurse, "sm-nurse");
    doctor_ = add_key("st-mary", ledger::kRolePrescriber, "sm-doctor");
    org_admin_ = add_key("st-mary", ledger::kRoleOrgAdmin, "sm-admin");
    biomed_ = add_key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    general_admin_ = add_key("general", ledger::kRoleOrgAdmin, "gh-admin");
  }

  Bytes record_statement(const std::string& record, const std::string& content, const Bytes& salt,
                         const crypto::PrivateKey* key = nullptr) {
    return sign(key ? *key : nurse_, domain::kTypeClinicalRecord,
                cmap({{"patient", cbor::text(kPatient)},
                      {"record", cbor::text(record)},
                      {"content_type", cbor::text("text/plain")},
                      {"commitment",
                       domain::digest_value(domain::record_commitment(salt, as_view(content)))}}),
                kPatient);
  }
  std::string upload_body(const Bytes& statement, const std::string& content, const Bytes& salt) {
    return str(cbor::encode(cmap({{"statement", cbor::Value::bytes(statement)},
                                  {"content", cbor::Value::bytes(as_view(content))},
                                  {"salt", cbor::Value::bytes(salt)}})));
  }
  Response put(const std::string& body) {
    return call("POST", "/v1/records", "application/cbor", body);
  }
  Response put_record(const std::string& record, const std::string& content) {
    return put(upload_body(record_statement(record, content, salt_), content, salt_));
  }
  Bytes access_statement(const std::string& record, const std::string& purpose = "TREAT",
                         const crypto::PrivateKey* key = nullptr) {
    return sign(key ? *key : doctor_, domain::kTypeRecordAccess,
                cmap({{"patient", cbor::text(kPatient)},
                      {"record", cbor::text(record)},
                      {"purpose", cbor::text(purpose)},
                      {"who", cbor::text("dr-house")}}),
                kPatient);
  }
  Response read(const std::string& record, const std::string& purpose = "TREAT") {
    return post_cose("/v1/records/access", access_statement(record, purpose));
  }
  Bytes erasure_statement(const crypto::PrivateKey& key) {
    return sign(
        key, domain::kTypeRecordErasure,
        cmap({{"patient", cbor::text(kPatient)}, {"reason", cbor::text("patient-request")}}),
        kPatient);
  }
  std::string vault_patient_dir() const {
    return dir_.path() + "/vault/p/" + kPatient.substr(domain::kPseudonymPrefix.size());
  }

  crypto::PrivateKey nurse_, doctor_, org_admin_, biomed_, general_admin_;
  const Bytes salt_ = Bytes(domain::kSaltBytes, 0x5a);
};

TEST_F(RecordRoutesTest, PutReadListErase) {
  const std::string request =
      upload_body(record_statement("note-1", "BP 120/80", salt_), "BP 120/80", salt_);
  Response stored = put(request);
  ASSERT_EQ(stored.status, 201) << stored.body;
  json s = body(stored);
  EXPECT_EQ(s["patient"], kPatient);
  EXPECT_EQ(s["record"], "note-1");
  EXPECT_EQ(s["stored"], true);
  EXPECT_EQ(s["entry"]["status"], "registered");
  // The same request again (a retry after a lost answer) is harmless.
  Response again = put(request);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(body(again)["entry"]["status"], "already-registered");
  // A new statement for the same record id is not.
  expect_problem(put_record("note-1", "BP 120/80"), 409, "conflict", "already recorded");

  Response r = read("note-1");
  ASSERT_EQ(r.status, 201) << r.body;
  json got = body(r);
  const std::string_view bp = "BP 120/80";
  EXPECT_EQ(base64_decode(got.value("content_base64", "")).value(), Bytes(bp.begin(), bp.end()));
  EXPECT_EQ(base64_decode(got.value("salt_base64", "")).value(), salt_);
  EXPECT_EQ(got["content_type"], "text/plain");
  EXPECT_EQ(got["purpose"], "TREAT");
  const std::string access_id = got["entry"]["id"];

  Response list = get("/v1/patients/" + kPatient + "/accesses");
  ASSERT_EQ(list.status, 200) << list.body;
  json l = body(list);
  ASSERT_EQ(l["accesses"].size(), 1u);
  EXPECT_EQ(l["accesses"][0]["id"], access_id);
  EXPECT_EQ(l["accesses"][0]["record"], "note-1");
  EXPECT_EQ(l["accesses"][0]["purpose"], "TREAT");
  EXPECT_EQ(l["accesses"][0]["who"], "dr-house");
  EXPECT_EQ(l["accesses"][0]["reader"]["name"], "sm-doctor");
  EXPECT_EQ(l["accesses"][0]["reader"]["org"], "st-mary");
  EXPECT_TRUE(l["next_cursor"].is_null());

  Response patient = get("/v1/patients/" + kPatient);
  ASSERT_EQ(patient.status, 200) << patient.body;
  json p = body(patient);
  ASSERT_EQ(p["records"].size(), 1u);
  EXPECT_EQ(p["records"][0]["commitment"],
            to_hex(domain::record_commitment(salt_, as_view("BP 120/80"))));
  EXPECT_TRUE(p["erasure"].is_null());

  Response erased = post_cose("/v1/records/erasure", erasure_statement(org_admin_));
  ASSERT_EQ(erased.status, 201) << erased.body;
  EXPECT_EQ(body(erased)["erased"], true);
  EXPECT_FALSE(std::filesystem::exists(vault_patient_dir() + "/key"));
  Response after = read("note-1");
  expect_problem(after, 410, "gone", "was erased");
  EXPECT_EQ(body(after)["title"], "Gone");
  expect_problem(put_record("note-2", "more"), 410, "gone");
  EXPECT_EQ(body(get("/v1/patients/" + kPatient))["erasure"]["org"], "st-mary");
  // Only the one access that was served is on the ledger.
  EXPECT_EQ(body(get("/v1/patients/" + kPatient + "/accesses"))["accesses"].size(), 1u);

  // Every entry about the patient still has a receipt that verifies.
  auto page = node_->ledger().query({.ref = "patient:" + kPatient});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), 3u);  // record, access, erasure
  for (const auto& e : page->entries) {
    auto bundle = node_->ledger().receipt(e.id);
    ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
    auto parsed = cose::parse_receipt_bundle(*bundle);
    ASSERT_TRUE(parsed.ok());
    EXPECT_TRUE(cose::verify_receipt_bundle(*parsed, e.statement,
                                            {testutil::test_keys().node.public_key()}, 1)
                    .ok());
  }
}

TEST_F(RecordRoutesTest, AnAccessStatementReadsOnce) {
  ASSERT_EQ(put_record("note-1", "x").status, 201);
  Bytes access = access_statement("note-1");
  ASSERT_EQ(post_cose("/v1/records/access", access).status, 201);
  // The statement is public on the ledger: sending it again reads nothing.
  expect_problem(post_cose("/v1/records/access", access), 409, "conflict", "sign a new one");
  // Nor does registering it elsewhere first, then bringing it here.
  Bytes other = access_statement("note-1");
  submit(other);
  expect_problem(post_cose("/v1/records/access", other), 409, "conflict", "registered before");
}

TEST_F(RecordRoutesTest, PutRefusalsStoreNothing) {
  const uint64_t before = log_size();
  expect_problem(call("POST", "/v1/records", "application/json", "{}"), 415,
                 "unsupported-media-type");
  expect_problem(put("not cbor"), 400, "malformed", "record body");
  expect_problem(put(str(cbor::encode(cbor::text("x")))), 400, "malformed", "CBOR map");
  Bytes st = record_statement("note-1", "abc", salt_);
  std::string extra = str(cbor::encode(cmap({{"statement", cbor::Value::bytes(st)},
                                             {"content", cbor::Value::bytes(as_view("abc"))},
                                             {"salt", cbor::Value::bytes(salt_)},
                                             {"patient_name", cbor::text("John Smith")}})));
  expect_problem(put(extra), 400, "malformed", "unknown field 'patient_name'");
  expect_problem(put(upload_body(st, "abc", Bytes(16, 1))), 400, "malformed", "field 'salt'");
  expect_problem(put(upload_body(st, "abd", salt_)), 422, "commitment-mismatch");
  expect_problem(put(upload_body(access_statement("note-1"), "abc", salt_)), 400, "malformed",
                 "takes a statement of content type");
  expect_problem(put(upload_body(Bytes{1, 2, 3}, "abc", salt_)), 400, "malformed");
  std::string big(domain::kVaultContentBytesMax + 1, 'x');
  expect_problem(put(upload_body(record_statement("big", big, salt_), big, salt_)), 413,
                 "too-large");
  // Signed by someone the rules refuse: registered nowhere, stored nowhere.
  Bytes by_biomed = record_statement("note-9", "abc", salt_, &biomed_);
  expect_problem(put(upload_body(by_biomed, "abc", salt_)), 422, "policy");
  EXPECT_EQ(log_size(), before);
  EXPECT_FALSE(std::filesystem::exists(vault_patient_dir()));
}

TEST_F(RecordRoutesTest, AccessRefusals) {
  expect_problem(call("POST", "/v1/records/access", "application/cbor", "x"), 415,
                 "unsupported-media-type");
  expect_problem(post_cose("/v1/records/access", Bytes{0xa0}), 400, "malformed");
  expect_problem(post_cose("/v1/records/access", record_statement("n", "x", salt_)), 400,
                 "malformed", "takes a statement of content type");
  const uint64_t before = log_size();
  // Not held here: not logged either.
  expect_problem(read("nothing"), 404, "not-found", "not held by this node");
  EXPECT_EQ(log_size(), before);
  ASSERT_EQ(put_record("note-1", "x").status, 201);
  expect_problem(read("note-1", "CURIOSITY"), 400, "malformed", "field 'purpose'");
  expect_problem(post_cose("/v1/records/access", access_statement("note-1", "TREAT", &biomed_)),
                 422, "policy");
}

TEST_F(RecordRoutesTest, ErasureRefusalsEraseNothing) {
  ASSERT_EQ(put_record("note-1", "x").status, 201);
  expect_problem(post_cose("/v1/records/erasure", erasure_statement(general_admin_)), 422, "policy",
                 "recorded no content");
  expect_problem(post_cose("/v1/records/erasure", erasure_statement(nurse_)), 422, "policy");
  expect_problem(post_cose("/v1/records/erasure", access_statement("note-1")), 400, "malformed");
  EXPECT_EQ(read("note-1").status, 201);
  ASSERT_EQ(post_cose("/v1/records/erasure", erasure_statement(org_admin_)).status, 201);
  expect_problem(post_cose("/v1/records/erasure", erasure_statement(org_admin_)), 409, "conflict",
                 "was erased");
}

// An erasure on the ledger that this node's vault has not applied (it came
// through another node, or the node crashed after registering it): the
// next request applies it before looking at the vault.
TEST_F(RecordRoutesTest, AnErasureRegisteredElsewhereIsAppliedBeforeServing) {
  ASSERT_EQ(put_record("note-1", "x").status, 201);
  submit(erasure_statement(org_admin_));  // POST /v1/entries: the vault is untouched
  EXPECT_TRUE(std::filesystem::exists(vault_patient_dir() + "/key"));
  expect_problem(read("note-1"), 410, "gone");
  EXPECT_FALSE(std::filesystem::exists(vault_patient_dir() + "/key"));
}

// The statement registered but the content not stored (a crash between the
// two): the record reads as not held, and the client's retry stores it.
TEST_F(RecordRoutesTest, ARegisteredRecordWithoutContentIsStoredByTheRetry) {
  Bytes st = record_statement("note-1", "late", salt_);
  submit(st);
  expect_problem(read("note-1"), 404, "not-found", "not held by this node");
  Response retry = put(upload_body(st, "late", salt_));
  ASSERT_EQ(retry.status, 200) << retry.body;
  EXPECT_EQ(body(retry)["entry"]["status"], "already-registered");
  Response r = read("note-1");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(base64_decode(body(r).value("content_base64", "")).value(),
            Bytes({'l', 'a', 't', 'e'}));
}

TEST_F(RecordRoutesTest, PatientRoutesCheckTheirArguments) {
  expect_problem(get("/v1/patients/John%20Smith/accesses"), 400, "invalid-argument", "pseudonym");
  expect_problem(get("/v1/patients/" + kPatient), 404, "not-found", "no clinical records");
  expect_problem(get("/v1/patients/" + kPatient + "/accesses", {{"limit", "0"}}), 400,
                 "invalid-argument", "'limit'");
  expect_problem(get("/v1/patients/" + kPatient + "/accesses", {{"cursor", "x"}}), 400,
                 "invalid-argument", "'cursor'");
  expect_problem(call("POST", "/v1/patients/" + kPatient + "/accesses"), 405, "method-not-allowed");
  expect_problem(get("/v1/records"), 405, "method-not-allowed");
  expect_problem(get("/v1/records/access"), 405, "method-not-allowed");
  expect_problem(get("/v1/records/nothing"), 404, "not-found");
  // Paging through accesses.
  ASSERT_EQ(put_record("note-1", "x").status, 201);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(read("note-1").status, 201);
  json first = body(get("/v1/patients/" + kPatient + "/accesses", {{"limit", "2"}}));
  ASSERT_EQ(first["accesses"].size(), 2u);
  ASSERT_TRUE(first["next_cursor"].is_string());
  json rest = body(get("/v1/patients/" + kPatient + "/accesses",
                       {{"cursor", first["next_cursor"].get<std::string>()}}));
  EXPECT_EQ(rest["accesses"].size(), 1u);
  EXPECT_TRUE(rest["next_cursor"].is_null());
}

}  // namespace
}  // namespace custos::api
