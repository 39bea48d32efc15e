// The device routes through Router::handle over a real Node running the
// domain rules: a device's life submitted as signed statements, then every
// GET route's JSON, and RFC 9457 problems for unknown ids and bad parameters.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "api/router.h"
#include "crypto/hash.h"
#include "domain/model.h"
#include "domain/rules.h"
#include "unit/domain/domain_fixture.h"

namespace custos::api {
namespace {

using nlohmann::json;
using testutil::digest;
using testutil::map;
using testutil::num;
using testutil::texts;
using testutil::txt;

Hash256 h(std::string_view s) {
  return crypto::sha256(as_view(s));
}

uint64_t now_s() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

class DeviceRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node::NodeConfig c;
    c.ledger = testutil::ledger_config(dir_.path());
    c.ledger.rules = domain::make_rules();
    c.block_interval_ms = 1;
    auto n = node::Node::start(std::move(c));
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    node_ = std::move(n).value();
    router_ = std::make_unique<Router>(*node_);
  }
  void TearDown() override {
    router_.reset();
    node_.reset();
  }

  Response call(const std::string& method, const std::string& path,
                std::multimap<std::string, std::string> query = {}, const std::string& body = "",
                const std::string& content_type = "") {
    Request r;
    r.method = method;
    r.path = path;
    r.query = std::move(query);
    r.body = body;
    r.content_type = content_type;
    r.remote = "127.0.0.1";
    return router_->handle(r);
  }
  json get_json(const std::string& path, std::multimap<std::string, std::string> query = {}) {
    Response r = call("GET", path, std::move(query));
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    return json::parse(r.body, nullptr, false);
  }
  void expect_problem(const std::string& path, std::multimap<std::string, std::string> query,
                      int status, const std::string& type, const std::string& says = "",
                      const std::string& method = "GET") {
    Response r = call(method, path, std::move(query));
    SCOPED_TRACE(path + " -> " + r.body);
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.content_type, "application/problem+json");
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j.value("type", ""), "urn:custos:problem:" + type);
    EXPECT_EQ(j.value("status", 0), status);
    EXPECT_NE(j.value("detail", "").find(says), std::string::npos);
  }

  // Signs with the key's next sequence number and submits; returns the
  // registration's JSON (id, index, flags).
  json submit(const crypto::PrivateKey& key, std::string_view type, const cbor::Value& payload) {
    cose::StatementHeader hd;
    hd.content_type = std::string(type);
    hd.issuer = "test";
    hd.subject = "devices";
    hd.issued_at_s = now_s();
    hd.sequence = ++seq_[key.public_key().kid()];
    Bytes st = cose::sign_statement(key, hd, cbor::encode(payload));
    Response r =
        call("POST", "/v1/entries", {}, std::string(st.begin(), st.end()), "application/cose");
    EXPECT_EQ(r.status, 201) << r.body;
    return json::parse(r.body, nullptr, false);
  }
  uint64_t registered_ms(const json& registration) {
    return get_json("/v1/entries/" + registration.value("id", ""))["registered_ms"].get<uint64_t>();
  }

  void add_org(const std::string& id, const std::string& kind) {
    submit(testutil::test_keys().admin, domain::kTypeOrgRegister,
           map({{"id", txt(id)}, {"name", txt(id + " name")}, {"kind", txt(kind)}}));
  }
  crypto::PrivateKey add_key(const std::string& org, uint32_t roles, const std::string& name) {
    crypto::PrivateKey key = testutil::new_key();
    ledger::KeyRegistration reg{key.public_key().spki_der(), roles, name, org};
    submit(testutil::test_keys().admin, ledger::kTypeKeyRegister,
           ledger::key_registration_payload(reg));
    return key;
  }
  json register_pump(const std::string& id, const crypto::PrivateKey& key,
                     const std::string& serial) {
    return submit(
        maker_, domain::kTypeDeviceRegister,
        map({{"device", txt(id)},
             {"class", txt("infusion-pump")},
             {"model", txt("AP-500")},
             {"udi",
              map({{"di", txt("00614141999996")}, {"serial", txt(serial)}, {"lot", txt("L42")}})},
             {"key", cbor::Value::bytes(ByteView(key.public_key().spki_der()))},
             {"firmware",
              map({{"version", txt("1.0.0")}, {"image_sha256", digest(h("image 1.0.0"))}})}}));
  }
  void release(const std::string& version) {
    submit(maker_, domain::kTypeFirmwareRelease,
           map({{"version", txt(version)},
                {"image_sha256", digest(h("image " + version))},
                {"sbom_sha256", digest(h("sbom " + version))},
                {"models", texts({"AP-500"})}}));
  }

  // The life of pump-1 (and icu/pump-2, an id with a slash) up to an
  // advisory; returns the registration time of pump-1's first firmware.
  uint64_t seed() {
    add_org("acme", "maker");
    add_org("st-mary", "hospital");
    add_org("fda", "regulator");
    maker_ = add_key("acme", ledger::kRoleBiomed, "acme-eng");
    biomed_ = add_key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    auto pharmacist = add_key("st-mary", ledger::kRolePharmacist, "sm-pharm");
    auto regulator = add_key("fda", ledger::kRoleAuditor, "fda-analyst");
    release("1.0.0");
    release("2.0.0");
    pump_ = testutil::new_key(crypto::Algorithm::kES256);
    register_pump("pump-1", pump_, "SN1");
    register_pump("icu/pump-2", testutil::new_key(), "SN2");
    submit(maker_, domain::kTypeDeviceCustody,
           map({{"device", txt("pump-1")}, {"to", txt("st-mary")}}));
    json installed = submit(
        biomed_, domain::kTypeDeviceInstall,
        map({{"device", txt("pump-1")}, {"care_area", txt("icu")}, {"location", txt("bed 4")}}));
    const uint64_t t_installed = registered_ms(installed);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a later block time
    submit(pump_, domain::kTypeFirmwareInstall,
           map({{"version", txt("2.0.0")}, {"image_sha256", digest(h("image 2.0.0"))}}));
    submit(pharmacist, domain::kTypeDrugLibrary,
           map({{"version", txt("DL-7")}, {"sha256", digest(h("dl7"))}}));
    submit(pump_, domain::kTypeDeviceEvent,
           map({{"event", txt("alarm")},
                {"alarm", txt("occlusion-downstream")},
                {"priority", txt("high")}}));
    submit(regulator, domain::kTypeAdvisory,
           map({{"id", txt("ADV-2026-01")},
                {"maker", txt("acme")},
                {"versions", texts({"2.0.0"})},
                {"severity", txt("high")},
                {"fixed_in", txt("2.0.1")}}));
    return t_installed;
  }

  testutil::TempDir dir_{"custos-api-devices"};
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<Router> router_;
  std::map<Hash256, uint64_t> seq_;
  crypto::PrivateKey maker_, biomed_, pump_;
};

// A device that resends after a lost acknowledgement hears the same flags
// as the first answer (the gateway passes them on to the device).
TEST_F(DeviceRoutesTest, AlreadyRegisteredAnswersKeepTheFlags) {
  seed();
  cose::StatementHeader hd;
  hd.content_type = std::string(domain::kTypeFirmwareInstall);
  hd.issuer = "test";
  hd.subject = "devices";
  hd.issued_at_s = now_s();
  hd.sequence = ++seq_[pump_.public_key().kid()];
  const Bytes st = cose::sign_statement(
      pump_, hd,
      cbor::encode(map({{"version", txt("9.9.9")}, {"image_sha256", digest(h("rogue"))}})));
  const std::string bytes(st.begin(), st.end());
  Response first = call("POST", "/v1/entries", {}, bytes, "application/cose");
  ASSERT_EQ(first.status, 201) << first.body;
  const json j1 = json::parse(first.body);
  ASSERT_TRUE(j1.contains("flags")) << first.body;
  EXPECT_EQ(j1["flags"][0].get<std::string>().rfind("firmware-unknown", 0), 0u) << first.body;
  Response again = call("POST", "/v1/entries", {}, bytes, "application/cose");
  ASSERT_EQ(again.status, 200) << again.body;
  const json j2 = json::parse(again.body);
  EXPECT_EQ(j2["status"], "already-registered");
  EXPECT_EQ(j2["flags"], j1["flags"]);
  EXPECT_EQ(j2["index"], j1["index"]);
  // The same in a batch answer (the gateway's path).
  cbor::Array one;
  one.push_back(cbor::Value::bytes(st));
  const Bytes batch = cbor::encode(cbor::Value::array(std::move(one)));
  Response b = call("POST", "/v1/entries/batch", {}, std::string(batch.begin(), batch.end()),
                    "application/cbor");
  ASSERT_EQ(b.status, 200) << b.body;
  const json jb = json::parse(b.body);
  EXPECT_EQ(jb["results"][0]["status"], "already-registered") << b.body;
  EXPECT_EQ(jb["results"][0]["flags"], j1["flags"]) << b.body;
}

TEST_F(DeviceRoutesTest, DevicesAndTheirTimelines) {
  seed();
  json list = get_json("/v1/devices");
  ASSERT_EQ(list["devices"].size(), 2u);
  EXPECT_EQ(list["devices"][0]["id"], "icu/pump-2");
  EXPECT_EQ(list["devices"][1]["holder"], "st-mary");
  EXPECT_TRUE(list["next_cursor"].is_null());
  json held = get_json("/v1/devices", {{"holder", "acme"}});
  ASSERT_EQ(held["devices"].size(), 1u);
  EXPECT_EQ(held["devices"][0]["id"], "icu/pump-2");
  json page = get_json("/v1/devices", {{"limit", "1"}});
  ASSERT_EQ(page["devices"].size(), 1u);
  EXPECT_EQ(page["next_cursor"], "icu/pump-2");
  json page2 = get_json("/v1/devices", {{"limit", "1"}, {"cursor", "icu/pump-2"}});
  EXPECT_EQ(page2["devices"][0]["id"], "pump-1");

  json d = get_json("/v1/devices/pump-1");
  EXPECT_EQ(d["udi"]["hrf"], "(01)00614141999996(10)L42(21)SN1");
  EXPECT_EQ(d["care_area"], "icu");
  EXPECT_EQ(d["location"], "bed 4");
  EXPECT_EQ(d["firmware"]["version"], "2.0.0");
  EXPECT_EQ(d["key"]["name"], "pump-1");
  EXPECT_EQ(d["key"]["roles"], json::array({"device"}));
  EXPECT_EQ(d["key"]["status"], "active");
  EXPECT_EQ(d["release"]["version"], "2.0.0");
  ASSERT_EQ(d["advisories"].size(), 1u);
  EXPECT_EQ(d["advisories"][0]["id"], "ADV-2026-01");
  EXPECT_EQ(get_json("/v1/devices/icu/pump-2")["holder"], "acme");

  json tl = get_json("/v1/devices/pump-1/timeline");
  ASSERT_EQ(tl["entries"].size(), 5u);
  EXPECT_EQ(tl["entries"][0]["kind"], "device-register");
  EXPECT_EQ(tl["entries"][1]["summary"], "custody to st-mary");
  EXPECT_EQ(tl["entries"][2]["signer"]["name"], "sm-biomed");
  EXPECT_EQ(tl["entries"][2]["signer"]["org"], "st-mary");
  EXPECT_EQ(tl["entries"][3]["signer"]["name"], "pump-1");
  EXPECT_EQ(tl["entries"][4]["summary"], "alarm occlusion-downstream (high)");
  EXPECT_EQ(tl["entries"][4]["payload"]["alarm"], "occlusion-downstream");
  EXPECT_TRUE(tl["next_cursor"].is_null());
  json newest = get_json("/v1/devices/pump-1/timeline", {{"order", "desc"}, {"limit", "2"}});
  ASSERT_EQ(newest["entries"].size(), 2u);
  EXPECT_EQ(newest["entries"][0]["kind"], "device-event");
  ASSERT_TRUE(newest["next_cursor"].is_string());
  json older = get_json("/v1/devices/pump-1/timeline",
                        {{"order", "desc"}, {"cursor", newest["next_cursor"].get<std::string>()}});
  ASSERT_EQ(older["entries"].size(), 3u);
  EXPECT_EQ(older["entries"][2]["kind"], "device-register");
  EXPECT_EQ(get_json("/v1/devices/icu/pump-2/timeline")["entries"].size(), 1u);
}

TEST_F(DeviceRoutesTest, StateAtATimeFirmwareAdvisoriesAndLibraries) {
  const uint64_t t_installed = seed();
  json then = get_json("/v1/devices/pump-1/state", {{"at", std::to_string(t_installed)}});
  EXPECT_EQ(then["holder"], "st-mary");
  EXPECT_EQ(then["installation"]["care_area"], "icu");
  EXPECT_EQ(then["installation"]["since"]["signer"]["name"], "sm-biomed");
  EXPECT_EQ(then["firmware"]["version"], "1.0.0");
  EXPECT_EQ(then["firmware"]["from_registration"], true);
  EXPECT_EQ(then["firmware"]["released_at_time"], true);
  EXPECT_TRUE(then["drug_library"]["hospital_current"].is_null());
  json now = get_json("/v1/devices/pump-1/state", {{"at", "2100-01-01T00:00:00Z"}});
  EXPECT_EQ(now["firmware"]["version"], "2.0.0");
  EXPECT_EQ(now["firmware"]["advisories_at_time"], json::array({"ADV-2026-01"}));
  EXPECT_EQ(now["drug_library"]["hospital_current"]["version"], "DL-7");

  json releases = get_json("/v1/firmware/acme");
  ASSERT_EQ(releases["releases"].size(), 2u);
  EXPECT_EQ(releases["releases"][1]["version"], "2.0.0");
  json rel = get_json("/v1/firmware/acme/2.0.0");
  EXPECT_EQ(rel["devices_running"], 1);
  EXPECT_EQ(rel["released"]["signer"]["name"], "acme-eng");
  EXPECT_EQ(rel["advisories"][0]["id"], "ADV-2026-01");

  json advs = get_json("/v1/advisories", {{"maker", "acme"}});
  ASSERT_EQ(advs["advisories"].size(), 1u);
  json adv = get_json("/v1/advisories/ADV-2026-01");
  EXPECT_EQ(adv["issuer"], "fda");
  EXPECT_EQ(adv["fixed_in"], "2.0.1");
  EXPECT_TRUE(adv["fix"].is_null());  // 2.0.1 is not released yet
  EXPECT_EQ(adv["published"]["signer"]["name"], "fda-analyst");
  json exposure = get_json("/v1/advisories/ADV-2026-01/exposure");
  EXPECT_EQ(exposure["device_count"], 1);
  ASSERT_EQ(exposure["holders"].size(), 1u);
  EXPECT_EQ(exposure["holders"][0]["holder"], "st-mary");
  EXPECT_EQ(exposure["holders"][0]["kind"], "hospital");
  EXPECT_EQ(exposure["holders"][0]["devices"][0]["id"], "pump-1");
  EXPECT_EQ(exposure["holders"][0]["devices"][0]["location"], "bed 4");

  json lib = get_json("/v1/drug-libraries/st-mary");
  EXPECT_EQ(lib["current"]["version"], "DL-7");
  EXPECT_EQ(lib["history"][0]["released"]["signer"]["name"], "sm-pharm");
}

TEST_F(DeviceRoutesTest, UnknownIdsAndBadParametersAreProblems) {
  const uint64_t t_installed = seed();
  expect_problem("/v1/devices/pump-404", {}, 404, "not-found", "'pump-404' is not registered");
  expect_problem("/v1/devices/pump-404/timeline", {}, 404, "not-found");
  expect_problem("/v1/devices/pump-404/state", {{"at", "1"}}, 404, "not-found");
  expect_problem("/v1/devices/pump-1/state", {{"at", "1"}}, 404, "not-found",
                 "after the time asked about");
  expect_problem("/v1/firmware/acme/9.9", {}, 404, "not-found", "no version '9.9'");
  expect_problem("/v1/advisories/ADV-404", {}, 404, "not-found", "is not published");
  expect_problem("/v1/advisories/ADV-404/exposure", {}, 404, "not-found");
  expect_problem("/v1/drug-libraries/nowhere", {}, 404, "not-found");
  expect_problem("/v1/firmware", {}, 404, "not-found", "no route");

  expect_problem("/v1/devices/pump-1/state", {}, 400, "invalid-argument", "'at'");
  expect_problem("/v1/devices/pump-1/state", {{"at", "yesterday"}}, 400, "invalid-argument");
  expect_problem("/v1/devices/pump-1/timeline", {{"limit", "0"}}, 400, "invalid-argument",
                 "between 1 and 500");
  expect_problem("/v1/devices/pump-1/timeline", {{"limit", "501"}}, 400, "invalid-argument");
  expect_problem("/v1/devices/pump-1/timeline", {{"cursor", "abc"}}, 400, "invalid-argument");
  expect_problem("/v1/devices/pump-1/timeline", {{"from", "2026-13-45"}}, 400, "invalid-argument");
  expect_problem("/v1/devices/pump-1/timeline", {{"order", "sideways"}}, 400, "invalid-argument",
                 "asc or desc");
  expect_problem("/v1/devices", {{"limit", "1001"}}, 400, "invalid-argument");
  expect_problem("/v1/advisories/ADV-2026-01/exposure", {{"cursor", "zz"}}, 400, "invalid-argument",
                 "cursor");
  expect_problem("/v1/advisories/ADV-2026-01/exposure", {{"limit", "10001"}}, 400,
                 "invalid-argument");
  expect_problem("/v1/devices", {}, 405, "method-not-allowed", "", "POST");
  expect_problem("/v1/advisories/ADV-2026-01", {}, 405, "method-not-allowed", "", "DELETE");
  // Nothing was stored by any of these, and the node still answers.
  (void)t_installed;
  EXPECT_EQ(get_json("/v1/devices/pump-1/timeline")["entries"].size(), 5u);
}

}  // namespace
}  // namespace custos::api
