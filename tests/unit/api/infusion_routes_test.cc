// The infusion routes over a real Node running the domain rules, no
// sockets: GET /v1/orders/{id}, /v1/orders/{id}/report (with and without
// receipts), /v1/patients/{pseudonym}/orders (paged), and the RFC 9457
// problems for every refusal.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "api/router.h"
#include "cose/receipt.h"
#include "crypto/hash.h"
#include "domain/model.h"
#include "domain/rules.h"
#include "unit/domain/domain_fixture.h"

namespace custos::api {
namespace {

using nlohmann::json;
using testutil::map;
using testutil::num;
using testutil::test_keys;
using testutil::txt;

const char* kPatient = "pseudonym:00112233445566778899aabbccddeeff";

class InfusionRoutesTest : public ::testing::Test {
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
    build_world();
  }
  void TearDown() override {
    router_.reset();
    node_.reset();
  }

  Response get(const std::string& path, std::multimap<std::string, std::string> query = {},
               const std::string& method = "GET") {
    Request r;
    r.method = method;
    r.path = path;
    r.query = std::move(query);
    r.remote = "127.0.0.1";
    return router_->handle(r);
  }

  // Signs with the key's next sequence number and the current time, posts,
  // and returns the entry id (hex).
  std::string submit(const crypto::PrivateKey& key, std::string_view type,
                     const cbor::Value& payload) {
    cose::StatementHeader h;
    h.content_type = std::string(type);
    h.issuer = "test";
    h.subject = "infusion";
    h.issued_at_s = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
    h.sequence = ++seq_[key.public_key().kid()];
    Bytes st = cose::sign_statement(key, h, cbor::encode(payload));
    Request r;
    r.method = "POST";
    r.path = "/v1/entries";
    r.content_type = "application/cose";
    r.body.assign(st.begin(), st.end());
    Response res = router_->handle(r);
    EXPECT_EQ(res.status, 201) << res.body;
    return json::parse(res.body, nullptr, false).value("id", "");
  }

  crypto::PrivateKey key(const std::string& org, uint32_t roles, const std::string& name) {
    auto k = testutil::new_key();
    ledger::KeyRegistration reg{k.public_key().spki_der(), roles, name, org};
    submit(test_keys().admin, ledger::kTypeKeyRegister, ledger::key_registration_payload(reg));
    return k;
  }

  void build_world() {
    for (auto [id, kind] : {std::pair{"acme", "maker"}, std::pair{"st-mary", "hospital"}}) {
      submit(test_keys().admin, domain::kTypeOrgRegister,
             map({{"id", txt(id)}, {"name", txt(id)}, {"kind", txt(kind)}}));
    }
    maker_ = key("acme", ledger::kRoleBiomed, "acme-eng");
    prescriber_ = key("st-mary", ledger::kRolePrescriber, "dr-house");
    pharmacist_ = key("st-mary", ledger::kRolePharmacist, "ph-rao");
    nurse_ = key("st-mary", ledger::kRoleNurse, "rn-jones");
    biomed_ = key("st-mary", ledger::kRoleBiomed, "sm-biomed");
    pump_ = testutil::new_key(crypto::Algorithm::kES256);
    submit(maker_, domain::kTypeDeviceRegister,
           map({{"device", txt("pump-17")},
                {"class", txt("infusion-pump")},
                {"model", txt("AP-500")},
                {"udi", map({{"di", txt("00614141999996")}, {"serial", txt("SN17")}})},
                {"key", cbor::Value::bytes(ByteView(pump_.public_key().spki_der()))}}));
    submit(maker_, domain::kTypeDeviceCustody,
           map({{"device", txt("pump-17")}, {"to", txt("st-mary")}}));
    submit(biomed_, domain::kTypeDeviceInstall,
           map({{"device", txt("pump-17")}, {"care_area", txt("icu")}, {"location", txt("b4")}}));
  }

  std::string order(const std::string& id) {
    return submit(prescriber_, domain::kTypeMedicationOrder,
                  map({{"order", txt(id)},
                       {"patient", txt(kPatient)},
                       {"drug", txt("heparin")},
                       {"dose", map({{"value", num(5000)}, {"unit", txt("[iU]")}})},
                       {"rate", map({{"value", num(25)}, {"unit", txt("mL/h")}})},
                       {"vtbi_ml", num(250)},
                       {"route", txt("intravenous")},
                       {"care_area", txt("icu")}}));
  }

  // Order, verification, programming, then the pump starts and raises an
  // alarm and is stopped.
  void chain(const std::string& id) {
    const std::string o = order(id);
    const std::string v =
        submit(pharmacist_, domain::kTypePharmacyVerification,
               map({{"order", txt(id)}, {"prev", txt(o)}, {"outcome", txt("verified")}}));
    submit(nurse_, domain::kTypePumpProgramming,
           map({{"order", txt(id)},
                {"prev", txt(v)},
                {"device", txt("pump-17")},
                {"drug_library", txt("DL-7")},
                {"drug", txt("heparin")},
                {"dose", map({{"value", num(5000)}, {"unit", txt("[iU]")}})},
                {"rate", map({{"value", num(25)}, {"unit", txt("mL/h")}})},
                {"vtbi_ml", num(250)}}));
    submit(pump_, domain::kTypeDeviceEvent, map({{"event", txt("start")}, {"order", txt(id)}}));
    submit(pump_, domain::kTypeDeviceEvent,
           map({{"event", txt("alarm")}, {"order", txt(id)}, {"alarm", txt("air-in-line")}}));
    submit(pump_, domain::kTypeDeviceEvent, map({{"event", txt("stop")}, {"order", txt(id)}}));
  }

  static json body(const Response& r) {
    json j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }

  static void expect_problem(const Response& r, int status, const std::string& type,
                             const std::string& says) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    json j = body(r);
    EXPECT_EQ(j.value("type", ""), "urn:custos:problem:" + type);
    EXPECT_EQ(j.value("status", 0), status);
    EXPECT_NE(j.value("detail", "").find(says), std::string::npos) << r.body;
  }

  testutil::TempDir dir_{"custos-infusion-api"};
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<Router> router_;
  std::map<Hash256, uint64_t> seq_;
  crypto::PrivateKey maker_, prescriber_, pharmacist_, nurse_, biomed_, pump_;
};

TEST_F(InfusionRoutesTest, AnOrderAndItsStatus) {
  const std::string entry = order("o-1");
  Response r = get("/v1/orders/o-1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  json j = body(r);
  EXPECT_EQ(j["status"], "ordered");
  EXPECT_EQ(j["steps"], 1);
  EXPECT_EQ(j["deviations"], 0);
  EXPECT_EQ(j["order"]["id"], "o-1");
  EXPECT_EQ(j["order"]["hospital"], "st-mary");
  EXPECT_EQ(j["order"]["patient"], kPatient);
  EXPECT_EQ(j["order"]["entry"], entry);
  EXPECT_EQ(j["order"]["rate"], (json{{"value", 25.0}, {"unit", "mL/h"}}));
  EXPECT_EQ(j["order"]["prescriber"], to_hex(prescriber_.public_key().kid()));

  chain("o-2");
  json j2 = body(get("/v1/orders/o-2"));
  EXPECT_EQ(j2["status"], "ended");
  EXPECT_EQ(j2["order"]["record_status"], "programmed");
  EXPECT_EQ(j2["order"]["device"], "pump-17");
  EXPECT_EQ(j2["steps"], 6);
  EXPECT_EQ(j2["deviations"], 1);
}

TEST_F(InfusionRoutesTest, TheReportWithAndWithoutReceipts) {
  chain("o-1");
  Response r = get("/v1/orders/o-1/report");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = body(r);
  EXPECT_EQ(j["order_id"], "o-1");
  EXPECT_EQ(j["status"], "ended");
  EXPECT_EQ(j["truncated"], false);
  EXPECT_EQ(j["value_tolerance"], 0.01);
  ASSERT_EQ(j["steps"].size(), 6u);
  std::vector<std::string> kinds;
  for (const auto& s : j["steps"]) kinds.push_back(s["kind"].get<std::string>());
  EXPECT_EQ(kinds, (std::vector<std::string>{"order", "verification", "programming", "device-event",
                                             "device-event", "device-event"}));
  const json& nurse = j["steps"][2];
  EXPECT_EQ(nurse["signer"]["name"], "rn-jones");
  EXPECT_EQ(nurse["signer"]["roles"], json::array({"nurse"}));
  EXPECT_EQ(nurse["signer"]["org"], "st-mary");
  EXPECT_EQ(nurse["device"], "pump-17");
  EXPECT_EQ(nurse["drug_library"], "DL-7");
  EXPECT_EQ(nurse["payload"]["rate"]["unit"], "mL/h");
  EXPECT_EQ(j["steps"][4]["event"], "alarm");
  EXPECT_EQ(j["steps"][4]["signer"]["device"], "pump-17");
  ASSERT_EQ(j["deviations"].size(), 1u);
  EXPECT_EQ(j["deviations"][0],
            (json{{"code", "alarm"},
                  {"step", 5},
                  {"party", {{"role", "device"}, {"name", "pump-17"}, {"org", "st-mary"}}},
                  {"detail", "pump pump-17 raised alarm air-in-line"},
                  {"about", "air-in-line"}}));
  // Every step carries its statement and a receipt that verifies offline.
  for (const auto& s : j["steps"]) {
    auto st = base64_decode(s["statement_base64"].get<std::string>());
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(to_hex(crypto::sha256(*st)), s["entry"].get<std::string>());
    ASSERT_TRUE(s.contains("receipt_base64")) << s.dump();
    auto receipt = base64_decode(s["receipt_base64"].get<std::string>());
    ASSERT_TRUE(receipt.ok());
    auto bundle = cose::parse_receipt_bundle(*receipt);
    ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
    EXPECT_TRUE(cose::verify_receipt_bundle(*bundle, *st, {test_keys().node.public_key()}, 1).ok());
  }

  json bare = body(get("/v1/orders/o-1/report", {{"receipts", "false"}}));
  ASSERT_EQ(bare["steps"].size(), 6u);
  for (const auto& s : bare["steps"]) EXPECT_FALSE(s.contains("receipt_base64"));
  EXPECT_EQ(bare["deviations"], j["deviations"]);
}

TEST_F(InfusionRoutesTest, APatientsOrdersArePaged) {
  for (int i = 0; i < 3; ++i) order("o-" + std::to_string(i));
  std::vector<std::string> ids;
  std::multimap<std::string, std::string> q{{"limit", "2"}};
  for (int page = 0; page < 5; ++page) {
    Response r = get(std::string("/v1/patients/") + kPatient + "/orders", q);
    ASSERT_EQ(r.status, 200) << r.body;
    json j = body(r);
    EXPECT_LE(j["orders"].size(), 2u);
    for (const auto& o : j["orders"]) ids.push_back(o["id"].get<std::string>());
    if (j["next_cursor"].is_null()) break;
    q = {{"limit", "2"}, {"cursor", j["next_cursor"].get<std::string>()}};
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"o-0", "o-1", "o-2"}));
  json none = body(get("/v1/patients/pseudonym:ffffffffffffffffffff/orders"));
  EXPECT_EQ(none["orders"], json::array());
  EXPECT_TRUE(none["next_cursor"].is_null());
}

TEST_F(InfusionRoutesTest, RefusalsAreProblems) {
  order("o-1");
  expect_problem(get("/v1/orders/o-404"), 404, "not-found", "order 'o-404' is not recorded");
  expect_problem(get("/v1/orders/o-404/report"), 404, "not-found", "is not recorded");
  expect_problem(get("/v1/orders/bad%20id"), 400, "invalid-argument", "order id");
  expect_problem(get("/v1/orders/o-1/report", {{"receipts", "maybe"}}), 400, "invalid-argument",
                 "'receipts' must be true or false");
  expect_problem(get("/v1/patients/John Smith/orders"), 400, "invalid-argument",
                 "a patient is named only by a pseudonym");
  const std::string patient = std::string("/v1/patients/") + kPatient + "/orders";
  expect_problem(get(patient, {{"limit", "0"}}), 400, "invalid-argument", "'limit' must be 1 to");
  expect_problem(get(patient, {{"limit", "x"}}), 400, "invalid-argument", "'limit'");
  expect_problem(get(patient, {{"cursor", "-1"}}), 400, "invalid-argument", "'cursor'");
  expect_problem(get("/v1/orders/o-1", {}, "POST"), 405, "method-not-allowed", "POST");
  expect_problem(get("/v1/orders/o-1/report", {}, "DELETE"), 405, "method-not-allowed", "DELETE");
  // Unknown shapes under these prefixes fall through to the router's 404.
  expect_problem(get("/v1/orders/o-1/other"), 404, "not-found", "");
  expect_problem(get("/v1/patients/x/other"), 404, "not-found", "");
  EXPECT_EQ(get("/v1/orders/o-1", {}, "HEAD").status, 200);
}

}  // namespace
}  // namespace custos::api
