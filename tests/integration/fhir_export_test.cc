// FHIR R4 exports from a real node: a maker registers a pump, the pump signs
// infusion events for an order, a clinician stores a record that a doctor
// reads and the hospital erases; the node's /fhir/R4 answers are checked for
// the elements R4 requires that JSON Schema cannot enforce. With
// CUSTOS_FHIR_EXPORT_DIR set, every export is also written there, one file
// each, for tests/fhir to validate against the official R4 JSON schema.
// MedicationRequest and MedicationAdministration come from domain/fhir.h over
// the node's real device-event entries and an order record built here (the
// infusion statements that write orders are another family's).
#include <cstdlib>

#include "crypto/hash.h"
#include "domain/fhir.h"
#include "domain/model.h"
#include "integration/harness.h"
#include "node/node.h"

namespace custos::integration {
namespace {

const std::string kPatient = "pseudonym:f00dfeed0123456789abcdef01234567";

class FhirExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(node_.start());
    client_ = make_client(node_.port());
    admin_ = std::make_unique<crypto::PrivateKey>(node_.admin_key());
  }
  void TearDown() override {
    if (node_.running()) {
      EXPECT_EQ(node_.stop(), 0) << slurp(node_.log_path());
    }
  }

  std::string post(const Bytes& statement) {
    auto res = post_cose(*client_, statement);
    EXPECT_TRUE(res && res->status == 201) << (res ? res->body : "no answer");
    return res ? Json::parse(res->body, nullptr, false).value("id", "") : "";
  }
  std::string admin_post(std::string_view type, const Json& payload) {
    return post(sign_admin(*client_, *admin_, type, "setup",
                           cbor::encode(cbor::from_json(payload).value())));
  }
  Signer key_of(const std::string& name, const std::string& org, const std::string& role) {
    Signer s = Signer::generate(name);
    ledger::KeyRegistration reg{s.key.public_key().spki_der(), 0, name, org};
    reg.roles = ledger::roles_from_names({role}).value();
    post(sign_admin(*client_, *admin_, ledger::kTypeKeyRegister, name,
                    cbor::encode(ledger::key_registration_payload(reg))));
    return s;
  }
  Bytes signed_by(Signer& s, std::string_view type, const Json& payload,
                  const std::string& subject) {
    return s.sign(subject, cbor::encode(cbor::from_json(payload).value()), std::string(type));
  }

  // GET a FHIR answer; written to the export directory when there is one.
  Json fetch(const std::string& path, const std::string& file) {
    auto res = client_->Get(path);
    EXPECT_TRUE(res && res->status == 200) << path << ": " << (res ? res->body : "no answer");
    if (!res) return Json();
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/fhir+json");
    Json j = Json::parse(res->body, nullptr, false);
    save(j, file);
    return j;
  }
  void save(const Json& j, const std::string& file) {
    if (const char* dir = std::getenv("CUSTOS_FHIR_EXPORT_DIR"))
      spit(std::string(dir) + "/" + file + ".json", j.dump(2));
  }

  // The node's entry, as the ledger would hand it to domain/fhir.h.
  ledger::EntryInfo entry(const std::string& id) {
    ledger::EntryInfo e;
    Json meta = json_of(client_->Get("/v1/entries/" + id));
    auto cose = client_->Get("/v1/entries/" + id, {{"Accept", "application/cose"}});
    e.id = hash_from_hex(id).value();
    e.index = meta.value("index", 0);
    e.registered_ms = meta.value("registered_ms", uint64_t{0});
    e.statement.assign(cose->body.begin(), cose->body.end());
    e.header = cose::parse_statement(e.statement).value().header;
    e.refs = meta.value("refs", std::vector<std::string>{});
    return e;
  }

  TempDir dir_;
  NodeProcess node_{dir_.path()};
  std::unique_ptr<httplib::Client> client_;
  std::unique_ptr<crypto::PrivateKey> admin_;
};

void expect_audit_event(const Json& a) {
  ASSERT_EQ(a.value("resourceType", ""), "AuditEvent") << a.dump();
  EXPECT_TRUE(a.contains("recorded") && a["recorded"].is_string());
  EXPECT_TRUE(a["type"].contains("code"));
  ASSERT_TRUE(a["agent"].is_array() && !a["agent"].empty());
  for (const auto& ag : a["agent"])
    EXPECT_TRUE(ag.contains("requestor") && ag["requestor"].is_boolean());
  EXPECT_TRUE(a["source"].contains("observer"));
}

void expect_provenance(const Json& p) {
  ASSERT_EQ(p.value("resourceType", ""), "Provenance") << p.dump();
  EXPECT_TRUE(p.contains("recorded") && p["recorded"].is_string());
  EXPECT_FALSE(p["target"].empty());
  EXPECT_FALSE(p["agent"].empty());
  for (const auto& s : p["signature"]) {
    EXPECT_TRUE(s.contains("when") && s.contains("who") && !s["type"].empty());
    EXPECT_EQ(s.value("sigFormat", ""), "application/cose");
  }
}

TEST_F(FhirExportTest, ExportsFromARealNode) {
  admin_post(domain::kTypeOrgRegister,
             {{"id", "acme"}, {"name", "Acme Medical"}, {"kind", "maker"}});
  admin_post(domain::kTypeOrgRegister,
             {{"id", "st-mary"}, {"name", "St Mary Hospital"}, {"kind", "hospital"}});
  Signer maker = key_of("acme-eng", "acme", "biomed");
  Signer biomed = key_of("sm-biomed", "st-mary", "biomed");
  Signer nurse = key_of("sm-nurse", "st-mary", "nurse");
  Signer doctor = key_of("sm-doctor", "st-mary", "prescriber");
  Signer org_admin = key_of("sm-admin", "st-mary", "org-admin");
  Signer pump = Signer::generate("pump-17", crypto::Algorithm::kES256);
  const Bytes spki = pump.key.public_key().spki_der();

  // The pump: registered by its maker with its own key and firmware, delivered, installed.
  auto reg = cbor::from_json({{"device", "pump-17"},
                              {"class", "infusion-pump"},
                              {"model", "AP-500"},
                              {"udi",
                               {{"di", "00614141999996"},
                                {"serial", "SN-17"},
                                {"lot", "L42"},
                                {"manufactured", "2025-03-01"},
                                {"expires", "2035-03-01"}}}})
                 .value();
  reg.as_map().emplace_back(cbor::text("key"), cbor::Value::bytes(spki));
  cbor::Map fw;
  fw.emplace_back(cbor::text("version"), cbor::text("4.2.0"));
  fw.emplace_back(cbor::text("image_sha256"),
                  cbor::Value::bytes(ByteView(crypto::sha256(as_view("image 4.2.0")))));
  reg.as_map().emplace_back(cbor::text("firmware"), cbor::Value::map(std::move(fw)));
  const std::string registration =
      post(maker.sign("pump-17", cbor::encode(reg), std::string(domain::kTypeDeviceRegister)));
  post(signed_by(maker, domain::kTypeDeviceCustody, {{"device", "pump-17"}, {"to", "st-mary"}},
                 "pump-17"));
  post(signed_by(biomed, domain::kTypeDeviceInstall,
                 {{"device", "pump-17"}, {"care_area", "icu"}, {"location", "bed 4"}}, "pump-17"));
  // The pump's own account of order o-1.
  std::vector<std::string> events;
  events.push_back(post(signed_by(pump, domain::kTypeDeviceEvent,
                                  {{"event", "programming"},
                                   {"order", "o-1"},
                                   {"rate_ml_h", 25},
                                   {"vtbi_ml", 250},
                                   {"drug", "heparin"},
                                   {"drug_library", "v1"}},
                                  "o-1")));
  events.push_back(post(
      signed_by(pump, domain::kTypeDeviceEvent, {{"event", "start"}, {"order", "o-1"}}, "o-1")));
  events.push_back(post(signed_by(pump, domain::kTypeDeviceEvent,
                                  {{"event", "completion"}, {"order", "o-1"}}, "o-1")));

  // A record stored, read and erased.
  const Bytes salt(32, 7);
  const std::string content = "note";
  Bytes salted = salt;
  salted.insert(salted.end(), content.begin(), content.end());
  Json rec_payload = {{"patient", kPatient}, {"record", "note-1"}, {"content_type", "text/plain"}};
  auto rec = cbor::from_json(rec_payload).value();
  rec.as_map().emplace_back(cbor::text("commitment"),
                            cbor::Value::bytes(ByteView(crypto::sha256(salted))));
  const Bytes record_st =
      nurse.sign(kPatient, cbor::encode(rec), std::string(domain::kTypeClinicalRecord));
  cbor::Map body;
  body.emplace_back(cbor::text("statement"), cbor::Value::bytes(record_st));
  body.emplace_back(cbor::text("content"), cbor::Value::bytes(as_view(content)));
  body.emplace_back(cbor::text("salt"), cbor::Value::bytes(salt));
  auto stored =
      client_->Post("/v1/records", as_string(cbor::encode(cbor::Value::map(std::move(body)))),
                    "application/cbor");
  ASSERT_TRUE(stored && stored->status == 201) << (stored ? stored->body : "no answer");
  const std::string record_id = Json::parse(stored->body)["entry"]["id"];
  auto read = client_->Post(
      "/v1/records/access",
      as_string(signed_by(
          doctor, domain::kTypeRecordAccess,
          {{"patient", kPatient}, {"record", "note-1"}, {"purpose", "TREAT"}, {"who", "u-4711"}},
          kPatient)),
      "application/cose");
  ASSERT_TRUE(read && read->status == 201) << (read ? read->body : "no answer");
  const std::string access_id = Json::parse(read->body)["entry"]["id"];
  auto erased = client_->Post(
      "/v1/records/erasure",
      as_string(signed_by(org_admin, domain::kTypeRecordErasure,
                          {{"patient", kPatient}, {"reason", "patient-request"}}, kPatient)),
      "application/cose");
  ASSERT_TRUE(erased && erased->status == 201) << (erased ? erased->body : "no answer");

  // What the node exports.
  Json device = fetch("/fhir/R4/Device/pump-17", "device");
  EXPECT_EQ(device["status"], "active");
  EXPECT_EQ(device["manufacturer"], "Acme Medical");
  EXPECT_EQ(device["version"][0]["value"], "4.2.0");
  expect_audit_event(fetch("/fhir/R4/AuditEvent/" + access_id, "auditevent-access"));
  expect_audit_event(fetch("/fhir/R4/AuditEvent/" + registration, "auditevent-registration"));
  expect_audit_event(fetch("/fhir/R4/AuditEvent/" + events[1], "auditevent-device-event"));
  Json by_patient = fetch("/fhir/R4/AuditEvent?patient=" + kPatient, "bundle-auditevent-patient");
  ASSERT_EQ(by_patient["entry"].size(), 3u);  // record, access, erasure
  for (const auto& e : by_patient["entry"]) expect_audit_event(e["resource"]);
  const std::string day = domain::fhir::instant(node::unix_time_ms()).substr(0, 10);
  Json by_date = fetch("/fhir/R4/AuditEvent?patient=" + kPatient + "&date=ge" + day + "&_count=2",
                       "bundle-auditevent-date");
  EXPECT_EQ(by_date["entry"].size(), 2u);
  EXPECT_EQ(by_date["link"][1]["relation"], "next");
  expect_provenance(fetch("/fhir/R4/Provenance/" + record_id, "provenance-record"));
  Json by_target = fetch("/fhir/R4/Provenance?target=Device/pump-17", "bundle-provenance-device");
  EXPECT_GE(by_target["entry"].size(), 3u);  // registration, custody, install (+ events)
  for (const auto& e : by_target["entry"]) expect_provenance(e["resource"]);
  EXPECT_EQ(fetch("/fhir/R4/metadata", "capabilitystatement")["fhirVersion"], "4.0.1");

  // The infusion chain, from an order record and the pump's real entries.
  domain::MedicationOrder order;
  order.id = "o-1";
  order.hospital = "st-mary";
  order.patient = kPatient;
  order.drug = "heparin 25,000 units in 250 mL";
  order.dose = {1000, "[iU]/h"};
  order.rate = {25, "mL/h"};
  order.vtbi_ml = 250;
  order.prescriber = doctor.key.public_key().kid();
  order.ordered_ms = node::unix_time_ms();
  order.status = domain::OrderStatus::kEnded;
  Json request = domain::fhir::medication_request(
      order, {doctor.key.public_key().kid(), "sm-doctor", "st-mary", ""});
  EXPECT_EQ(request["status"], "completed");
  EXPECT_EQ(request["intent"], "order");
  EXPECT_TRUE(request.contains("subject"));
  save(request, "medicationrequest");
  std::vector<domain::fhir::Step> steps;
  for (const auto& id : events)
    steps.push_back({entry(id), {pump.key.public_key().kid(), "pump-17", "acme", "pump-17"}});
  Json administration = domain::fhir::medication_administration(order, steps);
  EXPECT_EQ(administration["status"], "completed");
  EXPECT_TRUE(administration.contains("effectivePeriod"));
  EXPECT_EQ(administration["eventHistory"].size(), 3u);
  save(administration, "medicationadministration");
  save(domain::fhir::searchset({request, administration}, "/fhir/R4/MedicationRequest?order=o-1",
                               std::nullopt),
       "bundle-infusion");
}

}  // namespace
}  // namespace custos::integration
