// Device statements through both stages of the policy: registration by the
// maker, custody, installation, firmware releases and installs, advisories,
// drug libraries, device events and their flags, decommissioning.
#include <gtest/gtest.h>

#include "crypto/hash.h"
#include "unit/domain/domain_fixture.h"

namespace custos::domain {
namespace {

using testutil::digest;
using testutil::map;
using testutil::num;
using testutil::texts;
using testutil::txt;

Hash256 h(std::string_view s) {
  return crypto::sha256(as_view(s));
}

class DevicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_.add_org("acme", "maker");
    d_.add_org("medsupply", "distributor");
    d_.add_org("st-mary", "hospital");
    d_.add_org("fda", "regulator");
    maker_ = d_.add_key("acme", ledger::kRoleBiomed, "acme-eng");
    distributor_ = d_.add_key("medsupply", ledger::kRoleOrgAdmin, "ms-admin");
    biomed_ = d_.add_key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    pharmacist_ = d_.add_key("st-mary", ledger::kRolePharmacist, "sm-pharm");
    regulator_ = d_.add_key("fda", ledger::kRoleAuditor, "fda-analyst");
  }

  cbor::Value registration(const std::string& id, const crypto::PrivateKey& key,
                           const std::string& serial, const std::string& di = "00614141999996") {
    return map({{"device", txt(id)},
                {"class", txt("infusion-pump")},
                {"model", txt("AP-500")},
                {"udi", map({{"di", txt(di)},
                             {"serial", txt(serial)},
                             {"lot", txt("L42")},
                             {"manufactured", txt("2025-03-01")},
                             {"expires", txt("2035-03-01")}})},
                {"key", cbor::Value::bytes(ByteView(key.public_key().spki_der()))}});
  }

  crypto::PrivateKey register_pump(const std::string& id, const std::string& serial) {
    auto key = testutil::new_key(crypto::Algorithm::kES256);
    auto r = d_.submit(maker_, kTypeDeviceRegister, registration(id, key, serial));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return key;
  }

  Device device(const std::string& id) {
    auto bytes = d_.ledger().rule_record(device_key(id));
    EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
    return Device::decode(*bytes).value();
  }

  // Maker -> distributor -> hospital, installed in ICU bed 4.
  void deliver_and_install(const std::string& id) {
    ASSERT_TRUE(
        d_.submit(maker_, kTypeDeviceCustody, map({{"device", txt(id)}, {"to", txt("medsupply")}}))
            .ok());
    ASSERT_TRUE(d_.submit(distributor_, kTypeDeviceCustody,
                          map({{"device", txt(id)}, {"to", txt("st-mary")}}))
                    .ok());
    auto inst = d_.submit(
        biomed_, kTypeDeviceInstall,
        map({{"device", txt(id)}, {"care_area", txt("icu")}, {"location", txt("bed 4")}}));
    ASSERT_TRUE(inst.ok()) << inst.status().to_string();
  }

  void release(const std::string& version, std::initializer_list<const char*> models = {"AP-500"}) {
    auto r = d_.submit(maker_, kTypeFirmwareRelease,
                       map({{"version", txt(version)},
                            {"image_sha256", digest(h("image " + version))},
                            {"sbom_sha256", digest(h("sbom " + version))},
                            {"models", texts(models)}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  std::vector<std::string> codes(const std::vector<std::string>& flags) {
    std::vector<std::string> out;
    for (const auto& f : flags) out.push_back(f.substr(0, f.find(':')));
    return out;
  }

  testutil::TempDir dir_;
  testutil::DomainLedger d_{dir_.path()};
  crypto::PrivateKey maker_, distributor_, biomed_, pharmacist_, regulator_;
};

TEST_F(DevicesTest, MakerRegistersADeviceWithItsOwnKey) {
  auto key = register_pump("pump-17", "SN0017");
  Device dev = device("pump-17");
  EXPECT_EQ(dev.maker, "acme");
  EXPECT_EQ(dev.holder, "acme");
  EXPECT_EQ(dev.kid, key.public_key().kid());
  EXPECT_EQ(dev.udi.hrf(), "(01)00614141999996(11)250301(17)350301(10)L42(21)SN0017");
  auto ks = d_.ledger().key(key.public_key().kid());
  ASSERT_TRUE(ks.ok());
  EXPECT_EQ(ks->roles, ledger::kRoleDevice);
  EXPECT_EQ(ks->name, "pump-17");
}

TEST_F(DevicesTest, RegistrationRefusals) {
  register_pump("pump-1", "SN1");
  auto other = testutil::new_key();
  struct Case {
    const crypto::PrivateKey* signer;
    cbor::Value payload;
    ErrorCode code;
    const char* says;
  };
  const Case cases[] = {
      {&maker_, registration("pump-1", other, "SN2"), ErrorCode::kConflict, "already registered"},
      {&maker_, registration("pump-2", other, "SN1"), ErrorCode::kConflict,
       "(21)SN1 is already registered to device 'pump-1'"},
      {&maker_, registration("pump-2", other, "SN2", "00614141999995"), ErrorCode::kMalformed,
       "GTIN check digit is 5, expected 6"},
      {&biomed_, registration("pump-2", other, "SN2"), ErrorCode::kPolicy, "maker organisation"},
      {&pharmacist_, registration("pump-2", other, "SN2"), ErrorCode::kPolicy,
       "role org-admin, biomed"},
  };
  for (const auto& c : cases) {
    auto r = d_.submit(*c.signer, kTypeDeviceRegister, c.payload);
    ASSERT_FALSE(r.ok()) << c.says;
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
  }
}

TEST_F(DevicesTest, OnlyTheHolderHandsOverCustody) {
  register_pump("pump-1", "SN1");
  auto wrong = d_.submit(distributor_, kTypeDeviceCustody,
                         map({{"device", txt("pump-1")}, {"to", txt("st-mary")}}));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("is held by 'acme'"), std::string::npos);
  auto to_regulator =
      d_.submit(maker_, kTypeDeviceCustody, map({{"device", txt("pump-1")}, {"to", txt("fda")}}));
  ASSERT_FALSE(to_regulator.ok());
  EXPECT_EQ(to_regulator.status().code(), ErrorCode::kPolicy);
  auto unknown = d_.submit(maker_, kTypeDeviceCustody,
                           map({{"device", txt("pump-9")}, {"to", txt("st-mary")}}));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kNotFound);
  deliver_and_install("pump-1");
  Device dev = device("pump-1");
  EXPECT_EQ(dev.holder, "st-mary");
  EXPECT_EQ(dev.care_area, "icu");
}

TEST_F(DevicesTest, FirmwareInstallsAreAttestedByTheDeviceAndFlagged) {
  auto pump = register_pump("pump-1", "SN1");
  deliver_and_install("pump-1");
  release("2.0.0");
  release("2.1.0", {"AP-900"});
  // A released, approved image: no flags.
  auto ok = d_.submit(pump, kTypeFirmwareInstall,
                      map({{"version", txt("2.0.0")}, {"image_sha256", digest(h("image 2.0.0"))}}));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->flags.empty());
  EXPECT_EQ(device("pump-1").firmware->version, "2.0.0");
  // Not approved for this model.
  auto unapproved =
      d_.submit(pump, kTypeFirmwareInstall,
                map({{"version", txt("2.1.0")}, {"image_sha256", digest(h("image 2.1.0"))}}));
  ASSERT_TRUE(unapproved.ok());
  EXPECT_EQ(codes(unapproved->flags), std::vector<std::string>{"firmware-unapproved"});
  // A rogue image under a released version number.
  auto rogue = d_.submit(pump, kTypeFirmwareInstall,
                         map({{"version", txt("2.0.0")}, {"image_sha256", digest(h("evil"))}}));
  ASSERT_TRUE(rogue.ok());
  EXPECT_EQ(codes(rogue->flags), std::vector<std::string>{"firmware-unknown"});
  // Only the device itself attests its firmware.
  auto by_engineer =
      d_.submit(biomed_, kTypeFirmwareInstall,
                map({{"version", txt("2.0.0")}, {"image_sha256", digest(h("image 2.0.0"))}}));
  ASSERT_FALSE(by_engineer.ok());
  EXPECT_EQ(by_engineer.status().code(), ErrorCode::kPolicy);
}

TEST_F(DevicesTest, EventsOnAdvisedFirmwareAndOutdatedLibrariesAreFlagged) {
  auto pump = register_pump("pump-1", "SN1");
  deliver_and_install("pump-1");
  release("2.0.0");
  ASSERT_TRUE(
      d_.submit(pump, kTypeFirmwareInstall,
                map({{"version", txt("2.0.0")}, {"image_sha256", digest(h("image 2.0.0"))}}))
          .ok());
  ASSERT_TRUE(d_.submit(pharmacist_, kTypeDrugLibrary,
                        map({{"version", txt("DL-7")}, {"sha256", digest(h("dl7"))}}))
                  .ok());
  cbor::Value alarm =
      map({{"event", txt("alarm")}, {"alarm", txt("occlusion-downstream")}, {"order", txt("o-1")}});
  auto before = d_.submit(pump, kTypeDeviceEvent, alarm);
  ASSERT_TRUE(before.ok()) << before.status().to_string();
  EXPECT_TRUE(before->flags.empty());

  auto adv = d_.submit(regulator_, kTypeAdvisory,
                       map({{"id", txt("ADV-2026-01")},
                            {"maker", txt("acme")},
                            {"models", texts({"AP-500"})},
                            {"versions", texts({"2.0.0"})},
                            {"cves", texts({"CVE-2026-12345"})},
                            {"severity", txt("high")},
                            {"fixed_in", txt("2.0.1")}}));
  ASSERT_TRUE(adv.ok()) << adv.status().to_string();
  auto after = d_.submit(pump, kTypeDeviceEvent, alarm);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(codes(after->flags), std::vector<std::string>{"firmware-under-advisory"});
  EXPECT_NE(after->flags[0].find("ADV-2026-01 (high)"), std::string::npos);

  auto programming = d_.submit(pump, kTypeDeviceEvent,
                               map({{"event", txt("programming")},
                                    {"drug", txt("heparin")},
                                    {"rate_ml_h", num(25)},
                                    {"vtbi_ml", num(250)},
                                    {"drug_library", txt("DL-6")}}));
  ASSERT_TRUE(programming.ok()) << programming.status().to_string();
  EXPECT_EQ(codes(programming->flags),
            (std::vector<std::string>{"firmware-under-advisory", "drug-library-outdated"}));

  ledger::Query q;
  q.ref = "order:o-1";
  auto page = d_.ledger().query(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), 2u);
}

TEST_F(DevicesTest, EventFieldsAreCheckedPerKind) {
  auto pump = register_pump("pump-1", "SN1");
  struct Case {
    cbor::Value payload;
    const char* says;
  };
  const Case cases[] = {
      {map({{"event", txt("explode")}}), "field 'event': must be one of"},
      {map({{"event", txt("alarm")}}), "field 'alarm': is required"},
      {map({{"event", txt("rate-change")}, {"rate_ml_h", num(5000)}}),
       "field 'rate_ml_h': must be a number from 0 to 2000"},
      {map({{"event", txt("programming")},
            {"drug", txt("x")},
            {"rate_ml_h", num(5)},
            {"vtbi_ml", num(5)}}),
       "drug library used"},
      {map({{"event", txt("hard-limit-stop")},
            {"limit", map({{"kind", txt("soft")},
                           {"bound", txt("upper")},
                           {"value", num(5)},
                           {"unit", txt("mL/h")}})}}),
       "concerns a hard limit"},
      {map({{"event", txt("start")}, {"dose", map({{"value", num(5)}, {"unit", txt("spoons")}})}}),
       "field 'dose.unit'"},
      // The same rule as an order's dose: a pump cannot report a dose of 0.
      {map({{"event", txt("start")}, {"dose", map({{"value", num(0)}, {"unit", txt("mg")}})}}),
       "field 'dose.value': must be above 0"},
      {map({{"event", txt("start")}, {"patient", txt("John Smith")}}),
       "field 'patient' is not part of this statement"},
  };
  for (const auto& c : cases) {
    auto r = d_.submit(pump, kTypeDeviceEvent, c.payload);
    ASSERT_FALSE(r.ok()) << c.says;
    EXPECT_EQ(r.status().code(), ErrorCode::kMalformed);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
  }
}

// One block in which a pump's record changes between its own statements:
// each event sees the firmware installed just before it in the same block
// (the rules keep decoded records, checked against the record's bytes), and
// the audit's replay agrees.
TEST_F(DevicesTest, EventsSeeTheDeviceAsChangedEarlierInTheSameBlock) {
  auto pump = register_pump("pump-1", "SN1");
  deliver_and_install("pump-1");
  release("2.0.0");
  const auto status = map({{"event", txt("status")}, {"battery_pct", num(80)}});
  const std::vector<Bytes> block = {
      d_.sign(pump, kTypeDeviceEvent, status),
      d_.sign(pump, kTypeFirmwareInstall,
              map({{"version", txt("9.9.9")}, {"image_sha256", digest(h("rogue"))}})),
      d_.sign(pump, kTypeDeviceEvent, status),
      d_.sign(pump, kTypeFirmwareInstall,
              map({{"version", txt("2.0.0")}, {"image_sha256", digest(h("image 2.0.0"))}})),
      d_.sign(pump, kTypeDeviceEvent, status),
  };
  std::vector<ledger::Admitted> batch;
  for (const Bytes& st : block) {
    auto a = d_.ledger().admit(st);
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    batch.push_back(std::move(a).value());
  }
  auto written = d_.ledger().append_block(std::move(batch), d_.now_ms() + 1000);
  ASSERT_TRUE(written.ok()) << written.status().to_string();
  ASSERT_EQ(written->size(), block.size());
  for (const auto& r : *written) ASSERT_TRUE(r.ok()) << r.status().to_string();
  const std::vector<std::string> unknown = {"firmware-unknown"};
  EXPECT_TRUE((*written)[0]->flags.empty());
  EXPECT_EQ(codes((*written)[1]->flags), unknown);
  EXPECT_EQ(codes((*written)[2]->flags), unknown);
  EXPECT_TRUE((*written)[3]->flags.empty());
  EXPECT_TRUE((*written)[4]->flags.empty());
  ASSERT_TRUE(device("pump-1").firmware);
  EXPECT_EQ(device("pump-1").firmware->version, "2.0.0");
  ledger::AuditReport report;
  Status audited = d_.audit(dir_.path(), &report);
  EXPECT_TRUE(audited.ok()) << audited.to_string();
}

TEST_F(DevicesTest, DecommissionedDevicesSignNothingMore) {
  auto pump = register_pump("pump-1", "SN1");
  deliver_and_install("pump-1");
  auto ev =
      d_.submit(pump, kTypeDeviceEvent, map({{"event", txt("status")}, {"battery_pct", num(80)}}));
  ASSERT_TRUE(ev.ok()) << ev.status().to_string();
  ASSERT_TRUE(d_.submit(biomed_, kTypeDeviceDecommission,
                        map({{"device", txt("pump-1")}, {"reason", txt("end of life")}}))
                  .ok());
  EXPECT_EQ(device("pump-1").status, DeviceStatus::kDecommissioned);
  auto later = d_.submit(pump, kTypeDeviceEvent, map({{"event", txt("status")}}));
  ASSERT_FALSE(later.ok());
  EXPECT_EQ(later.status().code(), ErrorCode::kRevokedKey);
  // Earlier events stay, and the whole history replays in the audit.
  EXPECT_TRUE(d_.ledger().entry(ev->id).ok());
  ledger::AuditReport report;
  Status audit = d_.audit(dir_.path(), &report);
  EXPECT_TRUE(audit.ok()) << audit.to_string();
}

TEST_F(DevicesTest, AMakerAdvisesOnlyOnItsOwnDevices) {
  d_.add_org("other-maker", "maker");
  auto other = d_.add_key("other-maker", ledger::kRoleOrgAdmin, "om");
  auto r = d_.submit(other, kTypeAdvisory,
                     map({{"id", txt("ADV-X")},
                          {"maker", txt("acme")},
                          {"versions", texts({"1.0"})},
                          {"severity", txt("low")}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kPolicy);
  auto bad_cve = d_.submit(regulator_, kTypeAdvisory,
                           map({{"id", txt("ADV-Y")},
                                {"maker", txt("acme")},
                                {"versions", texts({"1.0"})},
                                {"severity", txt("low")},
                                {"cves", texts({"CVE-26-1"})}}));
  ASSERT_FALSE(bad_cve.ok());
  EXPECT_NE(bad_cve.status().message().find("is not a CVE id"), std::string::npos);
}

}  // namespace
}  // namespace custos::domain
