// FHIR R4 exports (domain/fhir.h) from real ledger entries and records:
// each resource's mapping field by field, and the elements FHIR requires
// that a JSON schema cannot enforce (AuditEvent.recorded, agent.requestor,
// Provenance.recorded, MedicationRequest.status/intent/subject,
// MedicationAdministration.status/effective[x]...).
#include "domain/fhir.h"

#include <gtest/gtest.h>

#include "crypto/hash.h"
#include "domain/clinical.h"
#include "unit/domain/domain_fixture.h"

namespace custos::domain {
namespace {

using fhir::Json;
using testutil::digest;
using testutil::map;
using testutil::txt;

const std::string kPatient = "pseudonym:aaaabbbbccccdddd0000111122223333";

class FhirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_.add_org("acme", "maker");
    d_.add_org("st-mary", "hospital");
    maker_ = d_.add_key("acme", ledger::kRoleBiomed, "acme-eng");
    biomed_ = d_.add_key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    nurse_ = d_.add_key("st-mary", ledger::kRoleNurse, "sm-nurse");
    doctor_ = d_.add_key("st-mary", ledger::kRolePrescriber, "sm-doctor");
    org_admin_ = d_.add_key("st-mary", ledger::kRoleOrgAdmin, "sm-admin");
    pump_ = testutil::new_key(crypto::Algorithm::kES256);
    registration_ = ok(d_.submit(
        maker_, kTypeDeviceRegister,
        map({{"device", txt("pump-17")},
             {"class", txt("infusion-pump")},
             {"model", txt("AP-500")},
             {"udi", map({{"di", txt("00614141999996")},
                          {"serial", txt("SN-17")},
                          {"lot", txt("L42")},
                          {"manufactured", txt("2025-03-01")},
                          {"expires", txt("2035-03-01")}})},
             {"key", cbor::Value::bytes(ByteView(pump_.public_key().spki_der()))},
             {"firmware", map({{"version", txt("4.2.0")},
                               {"image_sha256", digest(crypto::sha256(as_view("fw")))}})}})));
    ok(d_.submit(maker_, kTypeDeviceCustody,
                 map({{"device", txt("pump-17")}, {"to", txt("st-mary")}})));
    ok(d_.submit(
        biomed_, kTypeDeviceInstall,
        map({{"device", txt("pump-17")}, {"care_area", txt("icu")}, {"location", txt("bed 4")}})));
  }

  ledger::Registered ok(const Result<ledger::Registered>& r) {
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : ledger::Registered{};
  }
  ledger::EntryInfo entry(const ledger::Registered& r) {
    auto e = d_.ledger().entry(r.id);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    return *e;
  }
  fhir::Signer signer(const crypto::PrivateKey& key, const std::string& name,
                      const std::string& org, const std::string& device = "") {
    return fhir::Signer{key.public_key().kid(), name, org, device};
  }
  Device device() {
    return Device::decode(*d_.ledger().rule_record(device_key("pump-17"))).value();
  }
  ledger::Registered pump_event(const cbor::Value& payload) {
    return ok(d_.submit(pump_, kTypeDeviceEvent, payload, "o-1"));
  }
  // The patient's record and a read of it.
  std::pair<ledger::Registered, ledger::Registered> record_and_access() {
    auto rec =
        ok(d_.submit(nurse_, kTypeClinicalRecord,
                     map({{"patient", txt(kPatient)},
                          {"record", txt("note-1")},
                          {"content_type", txt("text/plain")},
                          {"commitment", digest(record_commitment(Bytes(32, 1), as_view("x")))}}),
                     kPatient));
    auto acc = ok(d_.submit(doctor_, kTypeRecordAccess,
                            map({{"patient", txt(kPatient)},
                                 {"record", txt("note-1")},
                                 {"purpose", txt("TREAT")},
                                 {"who", txt("dr-house")}}),
                            kPatient));
    return {rec, acc};
  }

  const fhir::Source source_{"node-1", "custos test consortium"};
  testutil::TempDir dir_;
  testutil::DomainLedger d_{dir_.path()};
  crypto::PrivateKey maker_, biomed_, nurse_, doctor_, org_admin_, pump_;
  ledger::Registered registration_;
};

// The elements R4 requires of every AuditEvent (JSON Schema cannot: a
// primitive may be given as "_recorded" instead).
void expect_required_audit_elements(const Json& a) {
  ASSERT_EQ(a["resourceType"], "AuditEvent");
  EXPECT_TRUE(a["type"].contains("code"));
  ASSERT_TRUE(a.contains("recorded") && a["recorded"].is_string());
  ASSERT_TRUE(a["agent"].is_array() && !a["agent"].empty());
  int requestors = 0;
  for (const auto& ag : a["agent"]) {
    ASSERT_TRUE(ag.contains("requestor") && ag["requestor"].is_boolean()) << ag.dump();
    requestors += ag["requestor"].get<bool>() ? 1 : 0;
    EXPECT_TRUE(ag.contains("who"));
  }
  EXPECT_EQ(requestors, 1);
  ASSERT_TRUE(a["source"].contains("observer"));
}

TEST_F(FhirTest, DeviceMapsTheDeviceRecord) {
  Json j = fhir::device(device(), "Acme Medical", "St Mary");
  EXPECT_EQ(j["resourceType"], "Device");
  EXPECT_EQ(j["id"], "pump-17");
  EXPECT_EQ(j["identifier"][0]["system"], "urn:custos:device");
  EXPECT_EQ(j["identifier"][0]["value"], "pump-17");
  EXPECT_EQ(j["udiCarrier"][0]["deviceIdentifier"], "00614141999996");
  EXPECT_EQ(j["udiCarrier"][0]["issuer"], "http://hl7.org/fhir/NamingSystem/gs1-di");
  EXPECT_EQ(j["udiCarrier"][0]["carrierHRF"], device().udi.hrf());
  EXPECT_EQ(j["status"], "active");
  EXPECT_EQ(j["manufacturer"], "Acme Medical");
  EXPECT_EQ(j["manufactureDate"], "2025-03-01");
  EXPECT_EQ(j["expirationDate"], "2035-03-01");
  EXPECT_EQ(j["lotNumber"], "L42");
  EXPECT_EQ(j["serialNumber"], "SN-17");
  EXPECT_EQ(j["modelNumber"], "AP-500");
  EXPECT_EQ(j["version"][0]["value"], "4.2.0");
  EXPECT_EQ(j["version"][0]["type"]["coding"][0]["code"], "531976");
  EXPECT_EQ(j["version"][0]["type"]["coding"][0]["system"], "urn:iso:std:iso:11073:10101");
  EXPECT_EQ(j["owner"]["identifier"]["value"], "st-mary");
  EXPECT_EQ(j["owner"]["display"], "St Mary");
  EXPECT_EQ(j["location"]["display"], "icu, bed 4");

  Device d = device();
  d.status = DeviceStatus::kDecommissioned;
  d.firmware.reset();
  d.udi.lot.clear();
  d.care_area.clear();
  d.location.clear();
  Json off = fhir::device(d, "", "");
  EXPECT_EQ(off["status"], "inactive");
  EXPECT_EQ(off["manufacturer"], "acme");  // no display name: the org id
  EXPECT_FALSE(off.contains("version"));
  EXPECT_FALSE(off.contains("lotNumber"));
  EXPECT_FALSE(off.contains("location"));
}

TEST_F(FhirTest, AuditEventOfARecordAccessIsABalpRead) {
  auto [rec, acc] = record_and_access();
  const ledger::EntryInfo e = entry(acc);
  Json a = fhir::audit_event(e, signer(doctor_, "sm-doctor", "st-mary"), source_);
  expect_required_audit_elements(a);
  EXPECT_EQ(a["id"], to_hex(e.id));
  EXPECT_EQ(a["action"], "R");
  EXPECT_EQ(a["type"]["code"], "rest");
  EXPECT_EQ(a["subtype"][0]["code"], "read");
  EXPECT_EQ(a["recorded"], fhir::instant(e.registered_ms));
  EXPECT_EQ(a["outcome"], "0");
  EXPECT_EQ(a["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
  // user (the person reading, requestor), client (the signing key), server (this node)
  const Json& user = a["agent"][0];
  EXPECT_TRUE(user["requestor"].get<bool>());
  EXPECT_EQ(user["type"]["coding"][0]["code"], "IRCP");
  EXPECT_EQ(user["who"]["identifier"]["system"], "urn:custos:user:st-mary");
  EXPECT_EQ(user["who"]["identifier"]["value"], "dr-house");
  EXPECT_EQ(user["purposeOfUse"][0]["coding"][0]["code"], "TREAT");
  const Json& client = a["agent"][1];
  EXPECT_EQ(client["type"]["coding"][0]["code"], "110153");
  EXPECT_EQ(client["who"]["identifier"]["value"], to_hex(doctor_.public_key().kid()));
  const Json& server = a["agent"][2];
  EXPECT_EQ(server["type"]["coding"][0]["code"], "110152");
  EXPECT_EQ(server["who"]["identifier"]["value"], "node-1");
  EXPECT_EQ(a["source"]["observer"]["display"], "node-1");
  EXPECT_EQ(a["source"]["site"], "custos test consortium");
  // the entry, the patient (a person, role patient), the record read
  bool patient = false, record = false;
  for (const auto& en : a["entity"]) {
    if (en["role"]["code"] == "1") {
      patient = true;
      EXPECT_EQ(en["type"]["code"], "1");
      EXPECT_EQ(en["what"]["identifier"]["system"], "urn:custos:pseudonym");
      EXPECT_EQ(en["what"]["identifier"]["value"], kPatient);
    }
    if (en["what"]["identifier"].value("system", "") == "urn:custos:record") {
      record = true;
      EXPECT_EQ(en["what"]["identifier"]["value"], kPatient + "/note-1");
    }
  }
  EXPECT_TRUE(patient);
  EXPECT_TRUE(record);
  EXPECT_EQ(a["entity"][0]["what"]["identifier"]["value"], to_hex(e.id));
  // Nothing but the pseudonym names the patient.
  EXPECT_EQ(a.dump().find("John"), std::string::npos);
}

TEST_F(FhirTest, AuditEventsOfOtherEntriesAreCreatesOrDeletes) {
  Json reg = fhir::audit_event(entry(registration_), signer(maker_, "acme-eng", "acme"), source_);
  expect_required_audit_elements(reg);
  EXPECT_EQ(reg["action"], "C");
  EXPECT_EQ(reg["subtype"][0]["code"], "create");
  EXPECT_FALSE(reg.contains("purposeOfEvent"));
  EXPECT_EQ(reg["agent"][0]["type"]["coding"][0]["code"], "AUT");
  bool device_entity = false;
  for (const auto& en : reg["entity"])
    device_entity |= en["what"].value("reference", "") == "Device/pump-17";
  EXPECT_TRUE(device_entity);

  // A device's own statement: the device is the agent.
  auto ev = pump_event(map({{"event", txt("start")}, {"order", txt("o-1")}}));
  Json by_pump = fhir::audit_event(entry(ev), signer(pump_, "pump-17", "acme", "pump-17"), source_);
  expect_required_audit_elements(by_pump);
  EXPECT_EQ(by_pump["agent"][1]["who"]["reference"], "Device/pump-17");

  record_and_access();
  auto erased = ok(d_.submit(org_admin_, kTypeRecordErasure,
                             map({{"patient", txt(kPatient)}, {"reason", txt("patient-request")}}),
                             kPatient));
  Json del = fhir::audit_event(entry(erased), signer(org_admin_, "sm-admin", "st-mary"), source_);
  expect_required_audit_elements(del);
  EXPECT_EQ(del["action"], "D");
  EXPECT_EQ(del["subtype"][0]["code"], "delete");
}

TEST_F(FhirTest, ProvenanceCarriesTheSignedStatement) {
  auto [rec, acc] = record_and_access();
  const ledger::EntryInfo e = entry(rec);
  Json p = fhir::provenance(e, signer(nurse_, "sm-nurse", "st-mary"));
  EXPECT_EQ(p["resourceType"], "Provenance");
  EXPECT_EQ(p["id"], to_hex(e.id));
  ASSERT_TRUE(p.contains("recorded"));
  EXPECT_EQ(p["recorded"], fhir::instant(e.registered_ms));
  EXPECT_EQ(p["occurredDateTime"], fhir::instant(e.header.issued_at_s * 1000));
  ASSERT_FALSE(p["target"].empty());
  EXPECT_EQ(p["target"][0]["identifier"]["value"], kPatient);
  const Json& agent = p["agent"][0];
  EXPECT_EQ(agent["type"]["coding"][0]["code"], "author");
  EXPECT_EQ(agent["who"]["identifier"]["value"], to_hex(nurse_.public_key().kid()));
  EXPECT_EQ(agent["onBehalfOf"]["identifier"]["value"], "st-mary");
  EXPECT_EQ(p["entity"][0]["role"], "source");
  EXPECT_EQ(p["entity"][0]["what"]["identifier"]["value"], to_hex(e.id));
  const Json& sig = p["signature"][0];
  EXPECT_EQ(sig["sigFormat"], "application/cose");
  EXPECT_EQ(sig["type"][0]["system"], "urn:iso-astm:E1762-95:2013");
  ASSERT_TRUE(sig.contains("when") && sig.contains("who"));
  auto data = base64_decode(sig["data"].get<std::string>());
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, e.statement);  // the exact bytes the receipt proves

  Json dev = fhir::provenance(entry(registration_), signer(maker_, "acme-eng", "acme"));
  EXPECT_EQ(dev["target"][0]["reference"], "Device/pump-17");
  EXPECT_EQ(dev["activity"]["coding"][0]["code"], "CREATE");
}

MedicationOrder order(OrderStatus status) {
  MedicationOrder o;
  o.id = "o-1";
  o.hospital = "st-mary";
  o.patient = kPatient;
  o.drug = "heparin 25,000 units in 250 mL";
  o.dose = {1000, "[iU]/h"};
  o.rate = {10, "mL/h"};
  o.vtbi_ml = 250;
  o.ordered_ms = 1767225600000;
  o.status = status;
  return o;
}

void expect_required_request_elements(const Json& r) {
  ASSERT_EQ(r["resourceType"], "MedicationRequest");
  ASSERT_TRUE(r.contains("status") && r["status"].is_string());
  ASSERT_TRUE(r.contains("intent") && r["intent"].is_string());
  ASSERT_TRUE(r.contains("subject"));
  ASSERT_TRUE(r.contains("medicationCodeableConcept"));
}

TEST_F(FhirTest, MedicationRequestFromTheOrder) {
  const fhir::Signer prescriber = signer(doctor_, "sm-doctor", "st-mary");
  Json r = fhir::medication_request(order(OrderStatus::kVerified), prescriber);
  expect_required_request_elements(r);
  EXPECT_EQ(r["id"], "o-1");
  EXPECT_EQ(r["status"], "active");
  EXPECT_EQ(r["intent"], "order");
  EXPECT_EQ(r["medicationCodeableConcept"]["text"], "heparin 25,000 units in 250 mL");
  EXPECT_EQ(r["subject"]["identifier"]["value"], kPatient);
  EXPECT_EQ(r["authoredOn"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(r["requester"]["identifier"]["value"], to_hex(doctor_.public_key().kid()));
  // A dose per hour is the rate; the UCUM unit is kept as the code.
  const Json& dr = r["dosageInstruction"][0]["doseAndRate"][0];
  EXPECT_EQ(dr["rateQuantity"]["value"], 1000);
  EXPECT_EQ(dr["rateQuantity"]["code"], "[iU]/h");
  EXPECT_EQ(dr["rateQuantity"]["system"], "http://unitsofmeasure.org");
  EXPECT_FALSE(dr.contains("doseQuantity"));
  EXPECT_EQ(r["dispenseRequest"]["quantity"]["value"], 250);

  EXPECT_EQ(fhir::medication_request(order(OrderStatus::kRejected), prescriber)["status"],
            "cancelled");
  EXPECT_EQ(fhir::medication_request(order(OrderStatus::kEnded), prescriber)["status"],
            "completed");
  MedicationOrder bolus = order(OrderStatus::kOrdered);
  bolus.dose = {5, "mg"};
  Json b = fhir::medication_request(bolus, prescriber);
  EXPECT_EQ(b["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"], 5);
  EXPECT_EQ(b["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["unit"], "mL/h");
}

void expect_required_administration_elements(const Json& a) {
  ASSERT_EQ(a["resourceType"], "MedicationAdministration");
  ASSERT_TRUE(a.contains("status") && a["status"].is_string());
  ASSERT_TRUE(a.contains("subject"));
  ASSERT_TRUE(a.contains("medicationCodeableConcept"));
  ASSERT_TRUE(a.contains("effectiveDateTime") || a.contains("effectivePeriod"));
}

TEST_F(FhirTest, MedicationAdministrationToleratesMissingSteps) {
  // Nothing happened yet: still a valid resource.
  Json none = fhir::medication_administration(order(OrderStatus::kVerified), {});
  expect_required_administration_elements(none);
  EXPECT_EQ(none["status"], "unknown");
  EXPECT_EQ(none["effectiveDateTime"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(none["request"]["reference"], "MedicationRequest/o-1");
  EXPECT_FALSE(none.contains("eventHistory"));
  EXPECT_EQ(fhir::medication_administration(order(OrderStatus::kRejected), {})["status"],
            "not-done");

  const fhir::Signer pump = signer(pump_, "pump-17", "acme", "pump-17");
  std::vector<fhir::Step> steps;
  auto step = [&](const cbor::Value& payload) {
    steps.push_back({entry(pump_event(payload)), pump});
  };
  step(map({{"event", txt("programming")},
            {"order", txt("o-1")},
            {"rate_ml_h", cbor::Value::uint(12)},
            {"vtbi_ml", cbor::Value::uint(250)},
            {"drug", txt("heparin")},
            {"drug_library", txt("v1")}}));
  Json programmed = fhir::medication_administration(order(OrderStatus::kProgrammed), steps);
  expect_required_administration_elements(programmed);
  EXPECT_EQ(programmed["status"], "in-progress");
  ASSERT_TRUE(programmed.contains("effectiveDateTime"));

  // Started, no end yet (a start without programming would do as well).
  step(map({{"event", txt("start")}, {"order", txt("o-1")}}));
  Json running = fhir::medication_administration(order(OrderStatus::kRunning), steps);
  expect_required_administration_elements(running);
  EXPECT_EQ(running["status"], "in-progress");
  EXPECT_EQ(running["effectivePeriod"]["start"],
            fhir::instant(steps[1].entry.header.issued_at_s * 1000));
  EXPECT_FALSE(running["effectivePeriod"].contains("end"));
  EXPECT_EQ(running["device"][0]["reference"], "Device/pump-17");

  step(map({{"event", txt("pause")}, {"order", txt("o-1")}}));
  EXPECT_EQ(fhir::medication_administration(order(OrderStatus::kRunning), steps)["status"],
            "on-hold");
  step(map({{"event", txt("completion")}, {"order", txt("o-1")}}));
  Json done = fhir::medication_administration(order(OrderStatus::kEnded), steps);
  expect_required_administration_elements(done);
  EXPECT_EQ(done["status"], "completed");
  EXPECT_TRUE(done["effectivePeriod"].contains("end"));
  // The dose per hour from the order, the pump's programmed rate otherwise.
  EXPECT_EQ(done["dosage"]["rateQuantity"]["code"], "[iU]/h");
  MedicationOrder plain = order(OrderStatus::kEnded);
  plain.dose = {};
  EXPECT_EQ(fhir::medication_administration(plain, steps)["dosage"]["rateQuantity"]["value"], 12);
  ASSERT_EQ(done["eventHistory"].size(), 4u);
  EXPECT_EQ(done["eventHistory"][0]["reference"], "Provenance/" + to_hex(steps[0].entry.id));
}

TEST_F(FhirTest, SearchsetBundleAndIds) {
  Json b = fhir::searchset({Json{{"resourceType", "AuditEvent"}, {"id", "x"}}},
                           "/fhir/R4/AuditEvent", std::string("/fhir/R4/AuditEvent?_cursor=7"));
  EXPECT_EQ(b["resourceType"], "Bundle");
  EXPECT_EQ(b["type"], "searchset");
  EXPECT_EQ(b["entry"][0]["search"]["mode"], "match");
  EXPECT_EQ(b["entry"][0]["resource"]["id"], "x");
  EXPECT_EQ(b["link"][1]["relation"], "next");
  EXPECT_EQ(fhir::searchset({}, "/s", std::nullopt)["link"].size(), 1u);

  EXPECT_EQ(fhir::resource_id("pump-17.a"), "pump-17.a");
  const std::string hashed = fhir::resource_id("lab:pump/17");
  EXPECT_EQ(hashed.size(), 64u);
  EXPECT_EQ(hashed, to_hex(crypto::sha256(as_view("lab:pump/17"))));
  EXPECT_EQ(fhir::resource_id(std::string(65, 'a')).size(), 64u);
  EXPECT_EQ(fhir::instant(1767225600123), "2026-01-01T00:00:00.123Z");
}

}  // namespace
}  // namespace custos::domain
