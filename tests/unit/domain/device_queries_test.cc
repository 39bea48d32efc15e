// The read side of device accountability over a real ledger running the
// domain rules: a device's record, its timeline, what it ran and where it
// was at a given time (moved between hospitals, firmware changed twice, an
// advisory published after the fact), advisory exposure grouped by holder,
// and the listings.
#include "domain/device_queries.h"

#include <gtest/gtest.h>

#include <set>

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

std::vector<std::string> ids(const std::vector<Device>& devices) {
  std::vector<std::string> out;
  for (const auto& d : devices) out.push_back(d.id);
  return out;
}

class DeviceQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_.add_org("acme", "maker");
    d_.add_org("medsupply", "distributor");
    d_.add_org("st-mary", "hospital");
    d_.add_org("city-general", "hospital");
    d_.add_org("fda", "regulator");
    maker_ = d_.add_key("acme", ledger::kRoleBiomed, "acme-eng");
    distributor_ = d_.add_key("medsupply", ledger::kRoleOrgAdmin, "ms-admin");
    biomed_ = d_.add_key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    pharmacist_ = d_.add_key("st-mary", ledger::kRolePharmacist, "sm-pharm");
    city_ = d_.add_key("city-general", ledger::kRoleBiomed, "cg-biomed");
    regulator_ = d_.add_key("fda", ledger::kRoleAuditor, "fda-analyst");
  }

  crypto::PrivateKey register_pump(const std::string& id, const std::string& model = "AP-500",
                                   const std::string& firmware = "") {
    auto key = testutil::new_key(crypto::Algorithm::kES256);
    auto p = map({{"device", txt(id)},
                  {"class", txt("infusion-pump")},
                  {"model", txt(model)},
                  {"udi", map({{"di", txt("00614141999996")}, {"serial", txt("SN-" + id)}})},
                  {"key", cbor::Value::bytes(ByteView(key.public_key().spki_der()))}});
    if (!firmware.empty()) {
      p = map({{"device", txt(id)},
               {"class", txt("infusion-pump")},
               {"model", txt(model)},
               {"udi", map({{"di", txt("00614141999996")}, {"serial", txt("SN-" + id)}})},
               {"key", cbor::Value::bytes(ByteView(key.public_key().spki_der()))},
               {"firmware", map({{"version", txt(firmware)},
                                 {"image_sha256", digest(h("image " + firmware))}})}});
    }
    auto r = d_.submit(maker_, kTypeDeviceRegister, p);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return key;
  }

  void transfer(const crypto::PrivateKey& by, const std::string& id, const std::string& to) {
    auto r = d_.submit(by, kTypeDeviceCustody, map({{"device", txt(id)}, {"to", txt(to)}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  void install(const crypto::PrivateKey& by, const std::string& id, const std::string& area,
               const std::string& location) {
    auto r = d_.submit(
        by, kTypeDeviceInstall,
        map({{"device", txt(id)}, {"care_area", txt(area)}, {"location", txt(location)}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  // Maker -> distributor -> St Mary, installed in the ICU.
  void deliver(const std::string& id, const std::string& location = "bed 4") {
    transfer(maker_, id, "medsupply");
    transfer(distributor_, id, "st-mary");
    install(biomed_, id, "icu", location);
  }
  void release(const std::string& version, std::initializer_list<const char*> models = {"AP-500"}) {
    auto r = d_.submit(maker_, kTypeFirmwareRelease,
                       map({{"version", txt(version)},
                            {"image_sha256", digest(h("image " + version))},
                            {"sbom_sha256", digest(h("sbom " + version))},
                            {"models", texts(models)}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  void install_firmware(const crypto::PrivateKey& device, const std::string& version) {
    auto r = d_.submit(
        device, kTypeFirmwareInstall,
        map({{"version", txt(version)}, {"image_sha256", digest(h("image " + version))}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  void advise(const std::string& id, std::initializer_list<const char*> versions,
              const std::string& fixed_in = "") {
    auto p = map({{"id", txt(id)},
                  {"maker", txt("acme")},
                  {"models", texts({"AP-500"})},
                  {"versions", texts(versions)},
                  {"cves", texts({"CVE-2026-12345"})},
                  {"severity", txt("high")}});
    if (!fixed_in.empty()) {
      p = map({{"id", txt(id)},
               {"maker", txt("acme")},
               {"models", texts({"AP-500"})},
               {"versions", texts(versions)},
               {"severity", txt("high")},
               {"fixed_in", txt(fixed_in)}});
    }
    auto r = d_.submit(regulator_, kTypeAdvisory, p);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  void event(const crypto::PrivateKey& device, const cbor::Value& payload) {
    auto r = d_.submit(device, kTypeDeviceEvent, payload);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  DeviceQueries q() { return DeviceQueries(d_.ledger()); }

  testutil::TempDir dir_;
  testutil::DomainLedger d_{dir_.path()};
  crypto::PrivateKey maker_, distributor_, biomed_, pharmacist_, city_, regulator_;
};

TEST_F(DeviceQueriesTest, ADeviceRecordShowsIdentityPlaceFirmwareKeyAndAdvisories) {
  release("1.0.0");
  auto pump = register_pump("pump-1", "AP-500", "1.0.0");
  deliver("pump-1");
  advise("ADV-1", {"1.0.0"});

  auto v = q().device("pump-1");
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(v->device.maker, "acme");
  EXPECT_EQ(v->device.holder, "st-mary");
  EXPECT_EQ(v->device.care_area, "icu");
  EXPECT_EQ(v->device.location, "bed 4");
  EXPECT_EQ(v->device.udi.hrf(), "(01)00614141999996(21)SN-pump-1");
  ASSERT_TRUE(v->device.firmware.has_value());
  EXPECT_EQ(v->device.firmware->version, "1.0.0");
  ASSERT_TRUE(v->key.has_value());
  EXPECT_EQ(v->key->kid, pump.public_key().kid());
  EXPECT_EQ(v->key->name, "pump-1");
  EXPECT_EQ(v->key->roles, ledger::kRoleDevice);
  EXPECT_FALSE(v->key->revoked);
  ASSERT_TRUE(v->release.has_value());
  EXPECT_EQ(v->release->image_sha256, h("image 1.0.0"));
  ASSERT_EQ(v->advisories.size(), 1u);
  EXPECT_EQ(v->advisories[0].id, "ADV-1");

  auto unknown = q().device("pump-404");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("'pump-404' is not registered"), std::string::npos);
}

TEST_F(DeviceQueriesTest, TheTimelineHasEveryEntryWithSignerAndWhatHappened) {
  release("2.0.0");
  auto pump = register_pump("pump-1");
  auto other = register_pump("pump-2");
  const uint64_t registered_ms = d_.now_ms() - 1000;
  deliver("pump-1");
  ASSERT_TRUE(
      d_.submit(
            biomed_, kTypeDeviceMaintenance,
            map({{"device", txt("pump-1")}, {"kind", txt("preventive")}, {"outcome", txt("pass")}}))
          .ok());
  install_firmware(pump, "2.0.0");
  const uint64_t firmware_ms = d_.now_ms();
  event(other, map({{"event", txt("status")}}));  // another device: not in this timeline
  event(pump, map({{"event", txt("alarm")},
                   {"alarm", txt("occlusion-downstream")},
                   {"priority", txt("high")}}));
  event(pump, map({{"event", txt("programming")},
                   {"drug", txt("heparin")},
                   {"rate_ml_h", num(25)},
                   {"vtbi_ml", num(250)},
                   {"drug_library", txt("DL-6")}}));

  const std::vector<std::string> want_kinds = {
      "device-register",    "device-custody",   "device-custody", "device-install",
      "device-maintenance", "firmware-install", "device-event",   "device-event"};
  // Paged three at a time.
  std::vector<TimelineItem> all;
  TimelineQuery tq;
  tq.limit = 3;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = q().timeline("pump-1", tq);
    ASSERT_TRUE(page.ok()) << page.status().to_string();
    EXPECT_LE(page->items.size(), 3u);
    for (auto& i : page->items) all.push_back(std::move(i));
    if (!page->next_cursor) break;
    tq.cursor = *page->next_cursor;
  }
  std::vector<std::string> kinds;
  for (const auto& i : all) kinds.push_back(i.kind);
  EXPECT_EQ(kinds, want_kinds);
  ASSERT_EQ(all.size(), want_kinds.size());
  EXPECT_EQ(all[0].entry.registered_ms, registered_ms);
  EXPECT_EQ(all[0].summary, "registered by acme: infusion-pump AP-500, serial SN-pump-1");
  EXPECT_EQ(all[0].signer.name, "acme-eng");
  EXPECT_EQ(all[0].signer.org, "acme");
  EXPECT_EQ(all[1].summary, "custody to medsupply");
  EXPECT_EQ(all[1].signer.name, "acme-eng");
  EXPECT_EQ(all[2].signer.name, "ms-admin");
  EXPECT_EQ(all[3].summary, "installed in icu, bed 4");
  EXPECT_EQ(all[3].signer.roles, ledger::kRoleBiomed);
  EXPECT_EQ(all[4].summary, "maintenance (preventive): pass");
  EXPECT_EQ(all[5].summary.rfind("firmware 2.0.0 installed (image ", 0), 0u) << all[5].summary;
  EXPECT_EQ(all[5].signer.name, "pump-1");
  EXPECT_EQ(all[6].summary, "alarm occlusion-downstream (high)");
  EXPECT_EQ(all[7].summary, "programming: heparin 25 mL/h, VTBI 250 mL, library DL-6");

  // A time range: from the firmware install on, newest first.
  TimelineQuery range;
  range.from_ms = firmware_ms;
  range.descending = true;
  auto recent = q().timeline("pump-1", range);
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->items.size(), 3u);
  EXPECT_EQ(recent->items[0].kind, "device-event");
  EXPECT_EQ(recent->items[2].kind, "firmware-install");
  EXPECT_FALSE(recent->next_cursor.has_value());
  // And up to (not including) it.
  TimelineQuery before;
  before.to_ms = firmware_ms;
  auto older = q().timeline("pump-1", before);
  ASSERT_TRUE(older.ok());
  EXPECT_EQ(older->items.size(), 5u);

  auto unknown = q().timeline("pump-404", {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kNotFound);
}

TEST_F(DeviceQueriesTest, StateAtATimeFollowsMovesFirmwareChangesAndLaterAdvisories) {
  release("1.0.0");
  release("2.0.0");
  release("2.1.0", {"AP-900"});  // not approved for AP-500
  const uint64_t before_registration = d_.now_ms();
  auto pump = register_pump("pump-1", "AP-500", "1.0.0");
  deliver("pump-1");
  const uint64_t t_installed = d_.now_ms();
  install_firmware(pump, "2.0.0");
  ASSERT_TRUE(d_.submit(pharmacist_, kTypeDrugLibrary,
                        map({{"version", txt("DL-1")}, {"sha256", digest(h("dl1"))}}))
                  .ok());
  event(pump, map({{"event", txt("programming")},
                   {"drug", txt("heparin")},
                   {"rate_ml_h", num(25)},
                   {"vtbi_ml", num(250)},
                   {"drug_library", txt("DL-1")}}));
  const uint64_t t_programmed = d_.now_ms();
  transfer(biomed_, "pump-1", "city-general");
  const uint64_t t_moved = d_.now_ms();
  install(city_, "pump-1", "oncology", "room 12");
  const uint64_t t_city = d_.now_ms();
  install_firmware(pump, "2.1.0");
  const uint64_t t_second_change = d_.now_ms();
  advise("ADV-7", {"2.0.0"}, "2.0.1");  // after the fact: names the firmware of T_programmed

  auto at_install = q().state_at("pump-1", t_installed);
  ASSERT_TRUE(at_install.ok()) << at_install.status().to_string();
  EXPECT_EQ(at_install->placement.holder, "st-mary");
  EXPECT_EQ(at_install->placement.care_area, "icu");
  EXPECT_EQ(at_install->placement.location, "bed 4");
  ASSERT_TRUE(at_install->placement.installed.has_value());
  EXPECT_EQ(at_install->placement.installed->signer.name, "sm-biomed");
  EXPECT_EQ(at_install->placement.holder_since.signer.name, "ms-admin");
  ASSERT_TRUE(at_install->firmware.has_value());
  EXPECT_EQ(at_install->firmware->version, "1.0.0");
  EXPECT_TRUE(at_install->firmware->from_registration);
  EXPECT_TRUE(at_install->firmware->released_at_time);
  EXPECT_TRUE(at_install->firmware->approved_for_model);
  EXPECT_FALSE(at_install->reported_library.has_value());
  EXPECT_FALSE(at_install->hospital_library.has_value());

  auto programmed = q().state_at("pump-1", t_programmed);
  ASSERT_TRUE(programmed.ok()) << programmed.status().to_string();
  ASSERT_TRUE(programmed->firmware.has_value());
  const FirmwareAtTime& fw = *programmed->firmware;
  EXPECT_EQ(fw.version, "2.0.0");
  EXPECT_FALSE(fw.from_registration);
  EXPECT_EQ(fw.installed.signer.name, "pump-1");
  EXPECT_TRUE(fw.released_at_time);
  EXPECT_TRUE(fw.image_matches);
  EXPECT_TRUE(fw.approved_for_model);
  EXPECT_TRUE(fw.advisories_at_time.empty());  // the advisory came later
  ASSERT_EQ(fw.advisories_now.size(), 1u);
  EXPECT_EQ(fw.advisories_now[0].id, "ADV-7");
  ASSERT_TRUE(programmed->reported_library.has_value());
  EXPECT_EQ(programmed->reported_library->version, "DL-1");
  ASSERT_TRUE(programmed->hospital_library.has_value());
  EXPECT_EQ(programmed->hospital_library->version, "DL-1");
  EXPECT_EQ(programmed->hospital_library->hospital, "st-mary");

  // Moved: City General holds it but has not installed it yet.
  auto moved = q().state_at("pump-1", t_moved);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->placement.holder, "city-general");
  EXPECT_TRUE(moved->placement.care_area.empty());
  EXPECT_FALSE(moved->placement.installed.has_value());
  EXPECT_FALSE(moved->hospital_library.has_value());  // City General has none
  ASSERT_TRUE(moved->reported_library.has_value());   // the last report before T
  EXPECT_EQ(moved->reported_library->version, "DL-1");

  auto city = q().state_at("pump-1", t_city + 500);  // between blocks
  ASSERT_TRUE(city.ok());
  EXPECT_EQ(city->placement.care_area, "oncology");
  EXPECT_EQ(city->placement.location, "room 12");
  EXPECT_EQ(city->firmware->version, "2.0.0");

  auto second = q().state_at("pump-1", t_second_change);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->firmware->version, "2.1.0");
  EXPECT_TRUE(second->firmware->released_at_time);
  EXPECT_FALSE(second->firmware->approved_for_model);
  EXPECT_EQ(second->firmware->flags.size(), 1u);  // firmware-unapproved, raised at install
  EXPECT_TRUE(second->firmware->advisories_now.empty());

  auto early = q().state_at("pump-1", before_registration);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(early.status().message().find("after the time asked about"), std::string::npos);
  EXPECT_EQ(q().state_at("pump-404", t_city).status().code(), ErrorCode::kNotFound);

  // Everything above replays identically in the audit.
  ledger::AuditReport report;
  Status audit = d_.audit(dir_.path(), &report);
  EXPECT_TRUE(audit.ok()) << audit.to_string();
}

TEST_F(DeviceQueriesTest, StateAtATimeShowsADecommissionedDevice) {
  register_pump("pump-1");
  deliver("pump-1");
  ASSERT_TRUE(d_.submit(biomed_, kTypeDeviceDecommission,
                        map({{"device", txt("pump-1")}, {"reason", txt("dropped")}}))
                  .ok());
  auto s = q().state_at("pump-1", d_.now_ms());
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(s->placement.decommissioned);
  ASSERT_TRUE(s->placement.decommissioned_by.has_value());
  EXPECT_EQ(s->placement.decommissioned_by->signer.name, "sm-biomed");
  EXPECT_EQ(s->placement.holder, "st-mary");
  EXPECT_FALSE(s->firmware.has_value());  // never reported any
  auto before = q().state_at("pump-1", d_.now_ms() - 1);
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(before->placement.decommissioned);
}

TEST_F(DeviceQueriesTest, ExposureListsAffectedDevicesPerHolder) {
  release("2.0.0", {"AP-500", "AP-900"});
  release("2.1.0");
  auto p1 = register_pump("pump-1", "AP-500", "2.0.0");
  auto p2 = register_pump("pump-2", "AP-500", "2.0.0");
  auto p3 = register_pump("pump-3", "AP-500", "2.0.0");
  auto p4 = register_pump("pump-4", "AP-500", "2.1.0");  // a version not named
  auto p5 = register_pump("pump-5", "AP-900", "2.0.0");  // a model not named
  auto p6 = register_pump("pump-6", "AP-500", "2.0.0");  // still at the maker
  auto p7 = register_pump("pump-7", "AP-500", "2.0.0");  // decommissioned
  deliver("pump-1", "bed 1");
  deliver("pump-2", "bed 2");
  deliver("pump-4", "bed 4");
  transfer(maker_, "pump-3", "city-general");
  install(city_, "pump-3", "oncology", "room 3");
  ASSERT_TRUE(d_.submit(maker_, kTypeDeviceDecommission,
                        map({{"device", txt("pump-7")}, {"reason", txt("recalled")}}))
                  .ok());
  // pump-4 later moves to 2.0.0 too, pump-2 away from it.
  install_firmware(p4, "2.0.0");
  install_firmware(p2, "2.1.0");
  advise("ADV-9", {"2.0.0", "1.9"});

  auto e = q().exposure("ADV-9", "", 100);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->device_count, 4u);
  EXPECT_FALSE(e->next_cursor.has_value());
  ASSERT_EQ(e->groups.size(), 3u);
  EXPECT_EQ(e->groups[0].holder, "acme");
  EXPECT_EQ(ids(e->groups[0].devices), std::vector<std::string>{"pump-6"});
  EXPECT_EQ(e->groups[1].holder, "city-general");
  ASSERT_TRUE(e->groups[1].org.has_value());
  EXPECT_EQ(e->groups[1].org->kind, kOrgHospital);
  ASSERT_EQ(ids(e->groups[1].devices), std::vector<std::string>{"pump-3"});
  EXPECT_EQ(e->groups[1].devices[0].care_area, "oncology");
  EXPECT_EQ(e->groups[1].devices[0].location, "room 3");
  EXPECT_EQ(e->groups[2].holder, "st-mary");
  EXPECT_EQ(ids(e->groups[2].devices), (std::vector<std::string>{"pump-1", "pump-4"}));

  // One device per page: the same devices, each once.
  std::multiset<std::string> paged;
  std::string cursor;
  for (int pages = 0; pages < 20; ++pages) {
    auto page = q().exposure("ADV-9", cursor, 1);
    ASSERT_TRUE(page.ok()) << page.status().to_string();
    EXPECT_LE(page->device_count, 1u);
    for (const auto& g : page->groups) {
      for (const auto& d : g.devices) paged.insert(d.id);
    }
    if (!page->next_cursor) break;
    cursor = *page->next_cursor;
  }
  EXPECT_EQ(paged, (std::multiset<std::string>{"pump-1", "pump-3", "pump-4", "pump-6"}));

  // The other way round: what a device is exposed to.
  auto dev1 = q().device("pump-1");
  ASSERT_TRUE(dev1.ok());
  ASSERT_EQ(dev1->advisories.size(), 1u);
  EXPECT_EQ(dev1->advisories[0].id, "ADV-9");
  EXPECT_TRUE(q().device("pump-2")->advisories.empty());
  EXPECT_TRUE(q().device("pump-5")->advisories.empty());

  EXPECT_EQ(q().exposure("ADV-404", "", 10).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(q().exposure("ADV-9", "not hex", 10).status().code(), ErrorCode::kInvalidArgument);
  (void)p1;
  (void)p3;
  (void)p5;
  (void)p6;
  (void)p7;
}

// Device ids may hold '/', versions may not (they are key components), so
// "i/acme/1.0/pump/a" is device "pump/a" on 1.0, never "a" on "1.0/pump".
TEST_F(DeviceQueriesTest, VersionsWithSlashesAreRefusedSoKeysStayUnambiguous) {
  release("1.0");
  register_pump("pump/a", "AP-500", "1.0");
  auto pump = register_pump("a", "AP-500", "1.0");
  auto rel = d_.submit(maker_, kTypeFirmwareRelease,
                       map({{"version", txt("1.0/pump")},
                            {"image_sha256", digest(h("i"))},
                            {"sbom_sha256", digest(h("s"))},
                            {"models", texts({"AP-500"})}}));
  ASSERT_FALSE(rel.ok());
  EXPECT_EQ(rel.status().code(), ErrorCode::kMalformed);
  EXPECT_NE(rel.status().message().find("field 'version': a firmware version must not contain"),
            std::string::npos)
      << rel.status().message();
  auto ins = d_.submit(pump, kTypeFirmwareInstall,
                       map({{"version", txt("1.0/pump")}, {"image_sha256", digest(h("i"))}}));
  ASSERT_FALSE(ins.ok());
  EXPECT_NE(ins.status().message().find("field 'version'"), std::string::npos);
  auto adv = d_.submit(regulator_, kTypeAdvisory,
                       map({{"id", txt("ADV-S")},
                            {"maker", txt("acme")},
                            {"versions", texts({"1.0", "1.0/pump"})},
                            {"severity", txt("low")}}));
  ASSERT_FALSE(adv.ok());
  EXPECT_NE(adv.status().message().find("field 'versions'"), std::string::npos);
  advise("ADV-OK", {"1.0"});
  auto e = q().exposure("ADV-OK", "", 100);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  ASSERT_EQ(e->groups.size(), 1u);
  EXPECT_EQ(ids(e->groups[0].devices), (std::vector<std::string>{"a", "pump/a"}));
  EXPECT_EQ(q().device("a")->device.firmware->version, "1.0");
}

TEST_F(DeviceQueriesTest, ListingsFilterAndPage) {
  release("1.0.0");
  release("2.0.0");
  for (int i = 1; i <= 5; ++i) register_pump("pump-" + std::to_string(i), "AP-500", "1.0.0");
  auto monitor_key = testutil::new_key();
  ASSERT_TRUE(
      d_.submit(maker_, kTypeDeviceRegister,
                map({{"device", txt("mon-1")},
                     {"class", txt("patient-monitor")},
                     {"model", txt("PM-1")},
                     {"udi", map({{"di", txt("00614141999996")}, {"serial", txt("M1")}})},
                     {"key", cbor::Value::bytes(ByteView(monitor_key.public_key().spki_der()))}}))
          .ok());
  deliver("pump-2");
  deliver("pump-4");
  advise("ADV-1", {"1.0.0"}, "2.0.0");

  auto held = q().devices({.holder = "st-mary"});
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(ids(held->items), (std::vector<std::string>{"pump-2", "pump-4"}));
  auto monitors = q().devices({.device_class = "patient-monitor"});
  ASSERT_TRUE(monitors.ok());
  EXPECT_EQ(ids(monitors->items), std::vector<std::string>{"mon-1"});
  EXPECT_TRUE(q().devices({.maker = "someone-else"})->items.empty());

  std::vector<std::string> all;
  DeviceFilter f{.limit = 2};
  for (int pages = 0; pages < 10; ++pages) {
    auto page = q().devices(f);
    ASSERT_TRUE(page.ok());
    EXPECT_LE(page->items.size(), 2u);
    for (const auto& d : page->items) all.push_back(d.id);
    if (!page->next_cursor) break;
    f.cursor = *page->next_cursor;
  }
  EXPECT_EQ(all,
            (std::vector<std::string>{"mon-1", "pump-1", "pump-2", "pump-3", "pump-4", "pump-5"}));

  auto releases = q().releases("acme", "", 1);
  ASSERT_TRUE(releases.ok());
  ASSERT_EQ(releases->items.size(), 1u);
  EXPECT_EQ(releases->items[0].version, "1.0.0");
  ASSERT_TRUE(releases->next_cursor.has_value());
  auto next = q().releases("acme", *releases->next_cursor, 1);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->items.size(), 1u);
  EXPECT_EQ(next->items[0].version, "2.0.0");
  EXPECT_TRUE(q().releases("medsupply", "", 10)->items.empty());

  auto rel = q().release("acme", "1.0.0");
  ASSERT_TRUE(rel.ok()) << rel.status().to_string();
  EXPECT_EQ(rel->devices_running, 5u);
  EXPECT_EQ(rel->released.signer.name, "acme-eng");
  ASSERT_EQ(rel->advisories.size(), 1u);
  EXPECT_EQ(q().release("acme", "9.9").status().code(), ErrorCode::kNotFound);

  auto adv = q().advisory("ADV-1");
  ASSERT_TRUE(adv.ok());
  EXPECT_EQ(adv->advisory.issuer, "fda");
  EXPECT_EQ(adv->published.signer.name, "fda-analyst");
  ASSERT_TRUE(adv->fix.has_value());
  EXPECT_EQ(adv->fix->version, "2.0.0");
  EXPECT_EQ(q().advisory("ADV-2").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(q().advisories(std::string("acme"), "", 10)->items.size(), 1u);
  EXPECT_TRUE(q().advisories(std::string("other"), "", 10)->items.empty());

  for (const char* v : {"DL-1", "DL-2"}) {
    ASSERT_TRUE(d_.submit(pharmacist_, kTypeDrugLibrary,
                          map({{"version", txt(v)}, {"sha256", digest(h(v))}}))
                    .ok());
  }
  auto lib = q().drug_library("st-mary");
  ASSERT_TRUE(lib.ok()) << lib.status().to_string();
  EXPECT_EQ(lib->current.version, "DL-2");
  ASSERT_EQ(lib->history.size(), 2u);
  EXPECT_EQ(lib->history[0].first.version, "DL-2");
  EXPECT_EQ(lib->history[1].first.version, "DL-1");
  EXPECT_EQ(lib->history[1].second.signer.name, "sm-pharm");
  EXPECT_EQ(q().drug_library("city-general").status().code(), ErrorCode::kNotFound);
}

TEST_F(DeviceQueriesTest, KindOfShortensDomainContentTypes) {
  EXPECT_EQ(DeviceQueries::kind_of(kTypeDeviceEvent), "device-event");
  EXPECT_EQ(DeviceQueries::kind_of("application/cbor"), "application/cbor");
  EXPECT_EQ(DeviceQueries::kind_of("application/vnd.custos.+cbor"), "application/vnd.custos.+cbor");
}

}  // namespace
}  // namespace custos::domain
