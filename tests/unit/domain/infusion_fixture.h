// A hospital world for the infusion chain: a maker (acme) with a released
// firmware, a hospital (st-mary) holding and running an installed pump on
// that firmware with drug library DL-7, another hospital, an outside
// pharmacy, a regulator; keys for every actor; builders for the chain's
// statements and the pump's events.
#pragma once

#include <string>

#include "crypto/hash.h"
#include "unit/domain/domain_fixture.h"

namespace custos::testutil {

inline Hash256 sha(std::string_view s) {
  return crypto::sha256(as_view(s));
}

inline const char* kPatient = "pseudonym:00112233445566778899aabbccddeeff";

// What a nurse programs (the defaults match InfusionWorld's order).
struct ProgrammedValues {
  std::string drug = "heparin";
  double dose = 5000;
  std::string dose_unit = "[iU]";
  double rate_ml_h = 25;
  double vtbi_ml = 250;
  std::string library = "DL-7";
  std::string device = "pump-17";
};

class InfusionWorld {
 public:
  explicit InfusionWorld(DomainLedger& d) : d_(d) {}

  void build() {
    d_.add_org("acme", "maker");
    d_.add_org("st-mary", "hospital");
    d_.add_org("st-luke", "hospital");
    d_.add_org("medrx", "pharmacy");
    d_.add_org("fda", "regulator");
    maker = d_.add_key("acme", ledger::kRoleBiomed, "acme-eng");
    biomed = d_.add_key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    prescriber = d_.add_key("st-mary", ledger::kRolePrescriber, "dr-house");
    pharmacist = d_.add_key("st-mary", ledger::kRolePharmacist, "ph-rao");
    nurse = d_.add_key("st-mary", ledger::kRoleNurse, "rn-jones");
    other_nurse = d_.add_key("st-luke", ledger::kRoleNurse, "rn-smith");
    other_prescriber = d_.add_key("st-luke", ledger::kRolePrescriber, "dr-luke");
    other_pharmacist = d_.add_key("st-luke", ledger::kRolePharmacist, "ph-luke");
    outside_pharmacist = d_.add_key("medrx", ledger::kRolePharmacist, "ph-medrx");
    regulator = d_.add_key("fda", ledger::kRoleAuditor, "fda-analyst");
    release("2.0.0");
    pump = register_pump("pump-17", "SN17");
    deliver_and_install("pump-17");
    install_firmware(pump, "2.0.0");
    library("DL-7");
  }

  void release(const std::string& version, const char* model = "AP-500") {
    auto r = d_.submit(maker, domain::kTypeFirmwareRelease,
                       map({{"version", txt(version)},
                            {"image_sha256", digest(sha("image " + version))},
                            {"sbom_sha256", digest(sha("sbom " + version))},
                            {"models", texts({model})}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  crypto::PrivateKey register_pump(const std::string& id, const std::string& serial) {
    auto key = new_key(crypto::Algorithm::kES256);
    auto r = d_.submit(maker, domain::kTypeDeviceRegister,
                       map({{"device", txt(id)},
                            {"class", txt("infusion-pump")},
                            {"model", txt("AP-500")},
                            {"udi", map({{"di", txt("00614141999996")}, {"serial", txt(serial)}})},
                            {"key", cbor::Value::bytes(ByteView(key.public_key().spki_der()))}}));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return key;
  }

  void deliver_and_install(const std::string& id) {
    auto c = d_.submit(maker, domain::kTypeDeviceCustody,
                       map({{"device", txt(id)}, {"to", txt("st-mary")}}));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    auto i = d_.submit(
        biomed, domain::kTypeDeviceInstall,
        map({{"device", txt(id)}, {"care_area", txt("icu")}, {"location", txt("bed 4")}}));
    ASSERT_TRUE(i.ok()) << i.status().to_string();
  }

  void install_firmware(const crypto::PrivateKey& device, const std::string& version,
                        const std::string& image = "") {
    auto r =
        d_.submit(device, domain::kTypeFirmwareInstall,
                  map({{"version", txt(version)},
                       {"image_sha256", digest(sha(image.empty() ? "image " + version : image))}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  void library(const std::string& version) {
    auto r = d_.submit(pharmacist, domain::kTypeDrugLibrary,
                       map({{"version", txt(version)}, {"sha256", digest(sha(version))}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  Result<ledger::Registered> advisory(const std::string& id, const std::string& version) {
    return d_.submit(regulator, domain::kTypeAdvisory,
                     map({{"id", txt(id)},
                          {"maker", txt("acme")},
                          {"models", texts({"AP-500"})},
                          {"versions", texts({version.c_str()})},
                          {"cves", texts({"CVE-2026-12345"})},
                          {"severity", txt("high")},
                          {"fixed_in", txt("2.0.1")}}));
  }

  // The order as the tests write it: heparin 5000 [iU], 25 mL/h, 250 mL.
  static cbor::Value order_payload(const std::string& id, const char* patient = kPatient) {
    return map({{"order", txt(id)},
                {"patient", txt(patient)},
                {"drug", txt("heparin")},
                {"drug_code", txt("RxNorm:5224")},
                {"dose", map({{"value", num(5000)}, {"unit", txt("[iU]")}})},
                {"rate", map({{"value", num(25)}, {"unit", txt("mL/h")}})},
                {"vtbi_ml", num(250)},
                {"route", txt("intravenous")},
                {"care_area", txt("icu")}});
  }

  Result<ledger::Registered> order(const std::string& id) {
    return d_.submit(prescriber, domain::kTypeMedicationOrder, order_payload(id));
  }

  static cbor::Value verification_payload(const std::string& order, const Hash256& prev,
                                          const std::string& outcome = "verified") {
    return map({{"order", txt(order)}, {"prev", digest(prev)}, {"outcome", txt(outcome)}});
  }

  Result<ledger::Registered> verify(const std::string& order, const Hash256& prev,
                                    const std::string& outcome = "verified") {
    return d_.submit(pharmacist, domain::kTypePharmacyVerification,
                     verification_payload(order, prev, outcome));
  }

  using Programmed = ProgrammedValues;

  static cbor::Value programming_payload(const std::string& order, const Hash256& prev,
                                         const Programmed& p = {}) {
    return map({{"order", txt(order)},
                {"prev", digest(prev)},
                {"device", txt(p.device)},
                {"drug_library", txt(p.library)},
                {"drug", txt(p.drug)},
                {"dose", map({{"value", num(p.dose)}, {"unit", txt(p.dose_unit)}})},
                {"rate", map({{"value", num(p.rate_ml_h)}, {"unit", txt("mL/h")}})},
                {"vtbi_ml", num(p.vtbi_ml)}});
  }

  Result<ledger::Registered> program(const std::string& order, const Hash256& prev,
                                     const Programmed& p = {}) {
    return d_.submit(nurse, domain::kTypePumpProgramming, programming_payload(order, prev, p));
  }

  // A pump event naming the order, with extra fields.
  Result<ledger::Registered> event(
      const std::string& order, const std::string& kind,
      std::initializer_list<std::pair<const char*, cbor::Value>> extra = {},
      const crypto::PrivateKey* device = nullptr) {
    cbor::Map m;
    m.emplace_back(cbor::text("event"), txt(kind));
    m.emplace_back(cbor::text("order"), txt(order));
    for (const auto& [k, v] : extra) m.emplace_back(cbor::text(k), v);
    return d_.submit(device ? *device : pump, domain::kTypeDeviceEvent,
                     cbor::Value::map(std::move(m)));
  }

  Result<ledger::Registered> pump_programming(const std::string& order, double rate_ml_h = 25,
                                              double vtbi_ml = 250,
                                              const std::string& library = "DL-7") {
    return event(order, "programming",
                 {{"drug", txt("heparin")},
                  {"rate_ml_h", num(rate_ml_h)},
                  {"vtbi_ml", num(vtbi_ml)},
                  {"drug_library", txt(library)}});
  }

  static cbor::Value limit(const char* kind, double value) {
    return map({{"kind", txt(kind)},
                {"bound", txt("upper")},
                {"value", num(value)},
                {"unit", txt("mL/h")}});
  }

  // The whole chain without a deviation: order, verification, programming,
  // the pump's programming, start, completion.
  void clean_chain(const std::string& id) {
    auto o = order(id);
    ASSERT_TRUE(o.ok()) << o.status().to_string();
    auto v = verify(id, o->id);
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    auto p = program(id, v->id);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    ASSERT_TRUE(pump_programming(id).ok());
    ASSERT_TRUE(event(id, "start", {{"rate_ml_h", num(25)}}).ok());
    ASSERT_TRUE(event(id, "completion", {{"volume_infused_ml", num(250)}}).ok());
  }

  crypto::PrivateKey maker, biomed, prescriber, pharmacist, nurse, other_nurse, other_prescriber,
      other_pharmacist, outside_pharmacist, regulator, pump;

 private:
  DomainLedger& d_;
};

}  // namespace custos::testutil
