// The FHIR routes (routes_fhir.cc) over a real node: reads, searches by
// patient, date and target with paging, the infusion resources from an
// order and its device events, and RFC 9457 problems for bad requests.
#include <gtest/gtest.h>

#include "crypto/hash.h"
#include "domain/clinical.h"
#include "domain/fhir.h"
#include "domain/rules.h"
#include "unit/api/domain_router_fixture.h"

namespace custos::api {
namespace {

using nlohmann::json;
using testutil::cmap;

const std::string kPatient = "pseudonym:0123456789abcdef0123456789abcdef";
constexpr std::string_view kTypeTestOrder = "application/vnd.custos.test-order+cbor";

// The infusion rules are written elsewhere; until they land, this test
// writes MedicationOrder records with a statement of its own (payload: the
// record's bytes) around the domain's rules.
class WithTestOrders : public ledger::Rules {
 public:
  bool defines(std::string_view type) const override {
    return type == kTypeTestOrder || domain_.defines(type);
  }
  Status check(const cose::Statement& st, const ledger::KeyState& signer) const override {
    if (st.header.content_type != kTypeTestOrder) return domain_.check(st, signer);
    return domain::MedicationOrder::decode(st.payload()).status();
  }
  Result<ledger::RuleOutcome> apply(const cose::Statement& st, const ledger::RuleContext& ctx,
                                    ledger::RuleState& state) const override {
    if (st.header.content_type != kTypeTestOrder) return domain_.apply(st, ctx, state);
    CUSTOS_ASSIGN_OR_RETURN(domain::MedicationOrder o,
                            domain::MedicationOrder::decode(st.payload()));
    state.put(domain::order_key(o.id), st.payload());
    ledger::RuleOutcome out;
    out.refs = {domain::ref("order", o.id), domain::ref("patient", o.patient)};
    return out;
  }

 private:
  domain::DomainRules domain_;
};

class FhirRoutesTest : public testutil::DomainRouterTest {
 protected:
  std::shared_ptr<const ledger::Rules> rules() const override {
    return std::make_shared<WithTestOrders>();
  }
  void SetUp() override {
    DomainRouterTest::SetUp();
    add_org("acme", "maker");
    add_org("st-mary", "hospital");
    maker_ = add_key("acme", ledger::kRoleBiomed, "acme-eng");
    nurse_ = add_key("st-mary", ledger::kRoleNurse, "sm-nurse");
    doctor_ = add_key("st-mary", ledger::kRolePrescriber, "sm-doctor");
    pump_ = testutil::new_key(crypto::Algorithm::kES256);
    names_[pump_.public_key().kid()] = "pump-17";
    registration_ = submit(sign(
        maker_, domain::kTypeDeviceRegister,
        cmap({{"device", cbor::text("pump-17")},
              {"class", cbor::text("infusion-pump")},
              {"model", cbor::text("AP-500")},
              {"udi", cmap({{"di", cbor::text("00614141999996")}, {"serial", cbor::text("SN-1")}})},
              {"key", cbor::Value::bytes(ByteView(pump_.public_key().spki_der()))}})));
    record_ =
        submit(sign(nurse_, domain::kTypeClinicalRecord,
                    cmap({{"patient", cbor::text(kPatient)},
                          {"record", cbor::text("note-1")},
                          {"content_type", cbor::text("text/plain")},
                          {"commitment", domain::digest_value(crypto::sha256(as_view("c")))}}),
                    kPatient));
    for (const char* purpose : {"TREAT", "HPAYMT", "PUBHLTH"}) {
      accesses_.push_back(submit(sign(doctor_, domain::kTypeRecordAccess,
                                      cmap({{"patient", cbor::text(kPatient)},
                                            {"record", cbor::text("note-1")},
                                            {"purpose", cbor::text(purpose)},
                                            {"who", cbor::text("u-1")}}),
                                      kPatient)));
    }
  }

  static void expect_fhir(const Response& r, int status = 200) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/fhir+json");
  }

  crypto::PrivateKey maker_, nurse_, doctor_, pump_;
  std::string registration_, record_;
  std::vector<std::string> accesses_;
};

TEST_F(FhirRoutesTest, ReadsDeviceAuditEventAndProvenance) {
  Response dev = get("/fhir/R4/Device/pump-17");
  expect_fhir(dev);
  json d = body(dev);
  EXPECT_EQ(d["resourceType"], "Device");
  EXPECT_EQ(d["manufacturer"], "acme name");  // the organisation's registered name
  EXPECT_EQ(d["udiCarrier"][0]["deviceIdentifier"], "00614141999996");
  expect_problem(get("/fhir/R4/Device/pump-99"), 404, "not-found", "not on the ledger");

  Response ae = get("/fhir/R4/AuditEvent/" + accesses_[0]);
  expect_fhir(ae);
  json a = body(ae);
  EXPECT_EQ(a["id"], accesses_[0]);
  EXPECT_EQ(a["action"], "R");
  EXPECT_EQ(a["agent"][1]["who"]["display"], "sm-doctor");
  EXPECT_EQ(a["agent"][2]["who"]["identifier"]["value"], "node-1");

  Response pv = get("/fhir/R4/Provenance/" + record_);
  expect_fhir(pv);
  json p = body(pv);
  auto entry = node_->ledger().entry(hash_from_hex(record_).value());
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(base64_decode(p["signature"][0]["data"].get<std::string>()).value(), entry->statement);
  EXPECT_EQ(p["agent"][0]["onBehalfOf"]["identifier"]["value"], "st-mary");

  expect_problem(get("/fhir/R4/AuditEvent/xyz"), 400, "invalid-argument", "64 hex");
  expect_problem(get("/fhir/R4/Provenance/" + std::string(64, '0')), 404, "not-found");
}

TEST_F(FhirRoutesTest, AuditEventSearchByPatientAndDateWithPaging) {
  Response all = get("/fhir/R4/AuditEvent", {{"patient", kPatient}});
  expect_fhir(all);
  json b = body(all);
  EXPECT_EQ(b["resourceType"], "Bundle");
  EXPECT_EQ(b["type"], "searchset");
  ASSERT_EQ(b["entry"].size(), 4u);  // the record and three reads
  for (const auto& e : b["entry"]) {
    EXPECT_EQ(e["search"]["mode"], "match");
    bool patient = false;
    for (const auto& en : e["resource"]["entity"])
      patient |= en["what"]["identifier"].value("value", "") == kPatient;
    EXPECT_TRUE(patient);
  }
  EXPECT_EQ(b["entry"][0]["resource"]["id"], record_);

  const std::string today = domain::fhir::instant(node::unix_time_ms()).substr(0, 10);
  EXPECT_EQ(
      body(get("/fhir/R4/AuditEvent", {{"patient", kPatient}, {"date", "ge" + today}}))["entry"]
          .size(),
      4u);
  EXPECT_EQ(
      body(get("/fhir/R4/AuditEvent", {{"patient", kPatient}, {"date", "lt" + today}}))["entry"]
          .size(),
      0u);
  EXPECT_EQ(body(get("/fhir/R4/AuditEvent", {{"patient", kPatient},
                                             {"date", "ge2000-01-01"},
                                             {"date", "le2000-12-31"}}))["entry"]
                .size(),
            0u);
  EXPECT_EQ(
      body(get("/fhir/R4/AuditEvent", {{"patient", kPatient}, {"date", today}}))["entry"].size(),
      4u);

  // Two at a time: the next link carries the cursor.
  json page1 = body(get("/fhir/R4/AuditEvent", {{"patient", kPatient}, {"_count", "2"}}));
  ASSERT_EQ(page1["entry"].size(), 2u);
  ASSERT_EQ(page1["link"].size(), 2u);
  EXPECT_EQ(page1["link"][1]["relation"], "next");
  const std::string next = page1["link"][1]["url"];
  const size_t at = next.find("_cursor=");
  ASSERT_NE(at, std::string::npos) << next;
  EXPECT_NE(next.find("_count=2"), std::string::npos) << next;
  json page2 =
      body(get("/fhir/R4/AuditEvent",
               {{"patient", kPatient}, {"_count", "2"}, {"_cursor", next.substr(at + 8)}}));
  ASSERT_EQ(page2["entry"].size(), 2u);
  EXPECT_EQ(page2["entry"][1]["resource"]["id"], accesses_[2]);

  // Without a patient: every entry is an audit event.
  EXPECT_EQ(body(get("/fhir/R4/AuditEvent", {{"_count", "1000"}}))["entry"].size(), log_size());

  expect_problem(get("/fhir/R4/AuditEvent", {{"patient", "John Smith"}}), 400, "invalid-argument",
                 "pseudonym");
  expect_problem(get("/fhir/R4/AuditEvent", {{"date", "ap2026-01-01"}}), 400, "invalid-argument",
                 "prefixes");
  expect_problem(get("/fhir/R4/AuditEvent", {{"date", "ge2026-13-45x"}}), 400, "invalid-argument");
  expect_problem(get("/fhir/R4/AuditEvent", {{"_count", "0"}}), 400, "invalid-argument", "_count");
}

TEST_F(FhirRoutesTest, ProvenanceSearchByTarget) {
  json dev = body(get("/fhir/R4/Provenance", {{"target", "Device/pump-17"}}));
  ASSERT_EQ(dev["entry"].size(), 1u);
  EXPECT_EQ(dev["entry"][0]["resource"]["id"], registration_);
  EXPECT_EQ(dev["entry"][0]["resource"]["target"][0]["reference"], "Device/pump-17");
  json patient = body(get("/fhir/R4/Provenance", {{"target", "patient:" + kPatient}}));
  EXPECT_EQ(patient["entry"].size(), 4u);
  expect_problem(get("/fhir/R4/Provenance"), 400, "invalid-argument", "needs 'target'");
  expect_problem(get("/fhir/R4/Provenance", {{"target", "pump-17"}}), 400, "invalid-argument");
}

TEST_F(FhirRoutesTest, InfusionResourcesFromTheOrderAndItsEvents) {
  expect_problem(get("/fhir/R4/MedicationRequest/o-1"), 404, "not-found", "order 'o-1'");
  domain::MedicationOrder o;
  o.id = "o-1";
  o.hospital = "st-mary";
  o.patient = kPatient;
  o.drug = "heparin";
  o.dose = {5, "mg"};
  o.rate = {25, "mL/h"};
  o.vtbi_ml = 250;
  o.prescriber = doctor_.public_key().kid();
  o.ordered_ms = node::unix_time_ms();
  o.status = domain::OrderStatus::kRunning;
  submit(sign(testutil::test_keys().admin, kTypeTestOrder, cbor::decode(o.encode()).value()));

  Response req = get("/fhir/R4/MedicationRequest/o-1");
  expect_fhir(req);
  json r = body(req);
  EXPECT_EQ(r["status"], "active");
  EXPECT_EQ(r["intent"], "order");
  EXPECT_EQ(r["requester"]["identifier"]["value"], to_hex(doctor_.public_key().kid()));

  json none = body(get("/fhir/R4/MedicationAdministration/o-1"));
  EXPECT_EQ(none["status"], "in-progress");  // running, though no event is on the ledger yet
  EXPECT_FALSE(none.contains("eventHistory"));

  submit(sign(pump_, domain::kTypeDeviceEvent,
              cmap({{"event", cbor::text("start")}, {"order", cbor::text("o-1")}}), "o-1"));
  submit(sign(pump_, domain::kTypeDeviceEvent,
              cmap({{"event", cbor::text("completion")}, {"order", cbor::text("o-1")}}), "o-1"));
  Response adm = get("/fhir/R4/MedicationAdministration/o-1");
  expect_fhir(adm);
  json a = body(adm);
  EXPECT_EQ(a["status"], "completed");
  EXPECT_EQ(a["eventHistory"].size(), 2u);
  EXPECT_EQ(a["device"][0]["reference"], "Device/pump-17");
  EXPECT_TRUE(a["effectivePeriod"].contains("start"));
  EXPECT_TRUE(a["effectivePeriod"].contains("end"));
  json prov = body(get("/fhir/R4/Provenance", {{"target", "MedicationRequest/o-1"}}));
  EXPECT_EQ(prov["entry"].size(), 3u);  // the order and both events
}

TEST_F(FhirRoutesTest, MetadataAndUnknownRoutes) {
  Response m = get("/fhir/R4/metadata");
  expect_fhir(m);
  json c = body(m);
  EXPECT_EQ(c["resourceType"], "CapabilityStatement");
  EXPECT_EQ(c["fhirVersion"], "4.0.1");
  EXPECT_EQ(c["rest"][0]["resource"].size(), 5u);
  expect_problem(call("POST", "/fhir/R4/AuditEvent", "application/fhir+json", "{}"), 405,
                 "method-not-allowed");
  expect_problem(get("/fhir/R4/Patient/p-1"), 404, "not-found");
  expect_problem(get("/fhir/R4/Patient"), 404, "not-found");
  expect_problem(get("/fhir/R5/metadata"), 404, "not-found");
  expect_problem(get("/fhir/R4/Device/a/b"), 404, "not-found");
}

}  // namespace
}  // namespace custos::api
