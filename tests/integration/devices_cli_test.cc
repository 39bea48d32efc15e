// The whole life of one infusion pump, driven through the `custos` CLI
// against a real `custos node --dev`: organisations and keys, registration
// by the maker, custody maker -> distributor -> hospital, installation,
// firmware releases, a firmware install signed by the device itself, a drug
// library, an advisory by a regulator, device events, the advisory's
// exposure under the right hospital, the state at a time before the firmware
// change, decommissioning, and `custos audit` replaying the rules.
#include "integration/harness.h"

namespace custos::integration {
namespace {

class DevicesCliTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(node_.start()); }
  void TearDown() override {
    if (node_.running()) {
      EXPECT_EQ(node_.stop(), 0) << slurp(node_.log_path());
    }
  }

  CommandResult custos(std::vector<std::string> args) {
    // Every command here but the offline ones talks to our node.
    if (args.size() >= 2 && args[0] != "keygen" && args[0] != "audit" && args[0] != "verify") {
      args.push_back("--node");
      args.push_back(node_.url());
    }
    return run_custos(work_.path(), args);
  }
  // Runs a command that must succeed; returns its stdout.
  std::string ok(const std::vector<std::string>& args) {
    CommandResult r = custos(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << r.err
                              << r.out;
    return r.out;
  }
  Json ok_json(std::vector<std::string> args) {
    args.push_back("--json");
    Json j = Json::parse(ok(args), nullptr, false);
    EXPECT_FALSE(j.is_discarded());
    return j;
  }
  std::string file(const std::string& name) const { return work_ / name; }

  void org(const std::string& id, const std::string& kind) {
    ok({"org", "register", "--admin-key", node_.admin_key_path(), "--id", id, "--name",
        id + " name", "--kind", kind});
  }
  // A key of an organisation, registered with `roles`; returns its file.
  std::string person(const std::string& name, const std::string& org, const std::string& roles) {
    ok({"keygen", "--out", file(name + ".key")});
    ok({"keys", "register", "--admin-key", node_.admin_key_path(), "--key", file(name + ".pub"),
        "--name", name, "--org", org, "--roles", roles});
    return file(name + ".key");
  }

  TempDir dir_;
  NodeProcess node_{dir_.path()};
  TempDir work_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(DevicesCliTest, TheLifeOfAPump) {
  org("acme", "maker");
  org("medsupply", "distributor");
  org("st-mary", "hospital");
  org("fda", "regulator");
  const std::string eng = person("acme-eng", "acme", "biomed");
  const std::string dist = person("ms-admin", "medsupply", "org-admin");
  const std::string biomed = person("sm-biomed", "st-mary", "biomed");
  const std::string pharm = person("sm-pharm", "st-mary", "pharmacist");
  const std::string fda = person("fda-analyst", "fda", "auditor");
  ok({"keygen", "--alg", "es256", "--out", file("pump-1.key")});
  spit(file("fw-1.0.0.bin"), "firmware image 1.0.0");
  spit(file("fw-2.0.0.bin"), "firmware image 2.0.0");
  spit(file("sbom.json"), "{\"components\": []}");

  for (const char* v : {"1.0.0", "2.0.0"}) {
    ok({"firmware", "release", "--key", eng, "--version", v, "--image",
        file(std::string("fw-") + v + ".bin"), "--sbom", file("sbom.json"), "--models",
        "AP-500,AP-600"});
  }
  std::string reg = ok({"device",
                        "register",
                        "--key",
                        eng,
                        "--device-key",
                        file("pump-1.pub"),
                        "--id",
                        "pump-1",
                        "--class",
                        "infusion-pump",
                        "--model",
                        "AP-500",
                        "--di",
                        "00614141999996",
                        "--serial",
                        "SN0001",
                        "--lot",
                        "L42",
                        "--manufactured",
                        "2026-01-15",
                        "--firmware-version",
                        "1.0.0",
                        "--firmware-image",
                        file("fw-1.0.0.bin")});
  EXPECT_TRUE(contains(reg, "registered device pump-1")) << reg;
  EXPECT_FALSE(contains(reg, "flag:")) << reg;  // a released, approved image
  ok({"device", "transfer", "--key", eng, "--id", "pump-1", "--to", "medsupply"});
  // Only the holder hands it over: St Mary cannot take it from the distributor.
  CommandResult grab =
      custos({"device", "transfer", "--key", biomed, "--id", "pump-1", "--to", "st-mary"});
  EXPECT_EQ(grab.exit_code, 1) << grab.err;
  EXPECT_TRUE(contains(grab.err, "is held by 'medsupply'")) << grab.err;
  ok({"device", "transfer", "--key", dist, "--id", "pump-1", "--to", "st-mary"});
  ok({"device", "install", "--key", biomed, "--id", "pump-1", "--care-area", "icu", "--location",
      "bed 4"});
  const Json before = ok_json({"device", "timeline", "pump-1", "--newest-first", "--limit", "1"});
  ASSERT_EQ(before["entries"].size(), 1u);
  const uint64_t t_installed = before["entries"][0]["registered_ms"].get<uint64_t>();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // later blocks, later times

  // The device attests its own firmware change.
  std::string fw = ok({"firmware", "install", "--key", file("pump-1.key"), "--version", "2.0.0",
                       "--image", file("fw-2.0.0.bin")});
  EXPECT_TRUE(contains(fw, "firmware 2.0.0 installation recorded")) << fw;
  ok({"drug-library", "release", "--key", pharm, "--version", "DL-7", "--file-sha256",
      std::string(64, 'a'), "--care-areas", "icu,oncology"});
  ok({"advisory",   "publish",        "--key",      fda,
      "--id",       "ADV-2026-01",    "--maker",    "acme",
      "--versions", "2.0.0",          "--models",   "AP-500",
      "--cves",     "CVE-2026-12345", "--severity", "high",
      "--fixed-in", "2.0.1",          "--summary",  "occlusion alarm may be delayed"});

  spit(file("alarm.json"),
       R"({"event": "alarm", "alarm": "occlusion-downstream", "priority": "high"})");
  std::string alarm =
      ok({"device", "event", "--key", file("pump-1.key"), "--json", file("alarm.json")});
  EXPECT_TRUE(contains(alarm, "flag: firmware-under-advisory: ADV-2026-01 (high)")) << alarm;
  spit(file("program.json"), R"({"event": "programming", "drug": "heparin", "rate_ml_h": 25,
                               "vtbi_ml": 250, "drug_library": "DL-6", "order": "o-1"})");
  std::string program =
      ok({"device", "event", "--key", file("pump-1.key"), "--json", file("program.json")});
  EXPECT_TRUE(contains(program, "flag: drug-library-outdated")) << program;
  spit(file("bad.json"), R"({"event": "alarm"})");
  CommandResult bad =
      custos({"device", "event", "--key", file("pump-1.key"), "--json", file("bad.json")});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;  // refused by the node (malformed)
  EXPECT_TRUE(contains(bad.err, "field 'alarm': is required")) << bad.err;

  // Exposure: pump-1 under St Mary, in the ICU.
  std::string exposure = ok({"advisory", "exposure", "ADV-2026-01"});
  EXPECT_TRUE(contains(exposure, "1 device(s) exposed")) << exposure;
  EXPECT_TRUE(contains(exposure, "st-mary (hospital, st-mary name)")) << exposure;
  EXPECT_TRUE(contains(exposure, "pump-1")) << exposure;
  EXPECT_TRUE(contains(exposure, "bed 4")) << exposure;
  Json ej = ok_json({"advisory", "exposure", "ADV-2026-01"});
  ASSERT_EQ(ej["holders"].size(), 1u);
  EXPECT_EQ(ej["holders"][0]["holder"], "st-mary");
  EXPECT_EQ(ej["holders"][0]["devices"][0]["care_area"], "icu");

  // What it ran before the firmware change, and now.
  Json then = ok_json({"device", "state", "pump-1", "--at", std::to_string(t_installed)});
  EXPECT_EQ(then["firmware"]["version"], "1.0.0");
  EXPECT_EQ(then["holder"], "st-mary");
  EXPECT_EQ(then["installation"]["location"], "bed 4");
  std::string then_text = ok({"device", "state", "pump-1", "--at", std::to_string(t_installed),
                              "--evidence-dir", file("evidence")});
  EXPECT_TRUE(contains(then_text, "firmware      1.0.0")) << then_text;
  EXPECT_TRUE(contains(then_text, "installed     icu, bed 4")) << then_text;
  // The maker proves it offline: the registration that reported 1.0.0, and its receipt.
  const std::string reg_index =
      std::to_string(then["firmware"]["installed"]["index"].get<uint64_t>());
  CommandResult proof =
      custos({"verify", "--statement", file("evidence/" + reg_index + "-firmware.cose"),
              "--receipt", file("evidence/" + reg_index + "-firmware.receipt"), "--genesis",
              node_.data_dir() + "/genesis.json"});
  EXPECT_EQ(proof.exit_code, 0) << proof.err << then_text;
  EXPECT_EQ(proof.out.rfind("valid: entry ", 0), 0u) << proof.out;
  EXPECT_TRUE(contains(proof.out, "is leaf " + reg_index + " of a log")) << proof.out;
  std::string now_text = ok({"device", "state", "pump-1", "--at", "2100-01-01T00:00:00Z"});
  EXPECT_TRUE(contains(now_text, "firmware      2.0.0")) << now_text;
  EXPECT_TRUE(contains(now_text, "ADV-2026-01 (high")) << now_text;
  EXPECT_TRUE(contains(now_text, "device reported DL-6")) << now_text;
  EXPECT_TRUE(contains(now_text, "library then: DL-7")) << now_text;

  // The timeline a biomedical engineer reads.
  std::string timeline = ok({"device", "timeline", "pump-1"});
  EXPECT_TRUE(contains(timeline, "custody to st-mary")) << timeline;
  EXPECT_TRUE(contains(timeline, "installed in icu, bed 4")) << timeline;
  EXPECT_TRUE(contains(timeline, "firmware 2.0.0 installed")) << timeline;
  EXPECT_TRUE(contains(timeline, "pump-1 (device, acme)")) << timeline;
  EXPECT_TRUE(contains(timeline, "firmware-under-advisory")) << timeline;
  Json tj = ok_json({"device", "timeline", "pump-1"});
  EXPECT_EQ(tj["entries"].size(), 7u);  // register, 2 custody, install, firmware, 2 events

  std::string show = ok({"device", "show", "pump-1"});
  EXPECT_TRUE(contains(show, "(01)00614141999996(11)260115(10)L42(21)SN0001")) << show;
  EXPECT_TRUE(contains(show, "ADV-2026-01 (high) fixed in 2.0.1")) << show;
  EXPECT_TRUE(contains(ok({"device", "list", "--holder", "st-mary"}), "pump-1"));
  EXPECT_TRUE(contains(ok({"firmware", "list", "acme"}), "2.0.0"));
  EXPECT_TRUE(contains(ok({"firmware", "show", "acme", "2.0.0"}), "1 device(s)"));
  EXPECT_TRUE(contains(ok({"advisory", "show", "ADV-2026-01"}), "CVE-2026-12345"));
  EXPECT_TRUE(contains(ok({"advisory", "list"}), "ADV-2026-01"));
  EXPECT_TRUE(contains(ok({"drug-library", "show", "st-mary"}), "DL-7"));

  CommandResult unknown = custos({"device", "show", "pump-404"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_TRUE(contains(unknown.err, "'pump-404' is not registered")) << unknown.err;
  CommandResult bad_hash = custos({"firmware", "install", "--key", file("pump-1.key"), "--version",
                                   "2.0.1", "--image-sha256", "xyz"});
  EXPECT_EQ(bad_hash.exit_code, 2);
  EXPECT_TRUE(contains(bad_hash.err, "64 hex characters")) << bad_hash.err;

  // Out of service: its key signs nothing more.
  ok({"device", "decommission", "--key", biomed, "--id", "pump-1", "--reason", "end of life"});
  CommandResult late =
      custos({"device", "event", "--key", file("pump-1.key"), "--json", file("alarm.json")});
  EXPECT_EQ(late.exit_code, 1) << late.err;
  EXPECT_TRUE(contains(late.err, "revoked")) << late.err;
  EXPECT_EQ(ok_json({"device", "show", "pump-1"})["status"], "decommissioned");
  EXPECT_EQ(ok_json({"advisory", "exposure", "ADV-2026-01"})["device_count"], 0);

  ASSERT_EQ(node_.stop(), 0);
  CommandResult audit = custos({"audit", "--data-dir", node_.data_dir(), "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err << audit.out;
  EXPECT_EQ(Json::parse(audit.out, nullptr, false).value("ok", false), true) << audit.out;
}

// A node that answers with hostile JSON: a word where a boolean belongs, a
// path where an entry id belongs, an empty log, fields missing. The CLI
// prints what it can or a clear error with a non-zero exit (never an
// abort), writes no file outside the evidence folder, and never prints a
// wrapped entry number.
class HostileNode {
 public:
  HostileNode() : port_(free_port()) {
    server_.Get(R"(/v1/devices/([^/]+)/state)",
                [](const httplib::Request& req, httplib::Response& res) {
                  const std::string id = req.matches[1];
                  Json s = {{"device", id}, {"at", 1796000000000}, {"log_size_at", 0}};
                  if (id == "typed-wrong") {
                    s["decommissioned"] = "yes";  // a boolean is read here
                  } else if (id == "path-evidence") {
                    s["holder_since"] = {{"entry", "../../escaped"}, {"index", 1}};
                  }
                  res.set_content(s.dump(), "application/json");
                });
    // An order whose fields are of the wrong types.
    server_.Get(R"(/v1/orders/([^/]+))", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(Json({{"order", {{"id", 7}, {"drug", true}}}, {"status", 1}}).dump(),
                      "application/json");
    });
    // Bound before the thread starts: the first request finds it listening.
    if (!server_.bind_to_port("127.0.0.1", port_)) throw std::runtime_error("bind failed");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~HostileNode() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  httplib::Server server_;
  std::thread thread_;
};

TEST(DevicesCliHostileNodeTest, OddAnswersGiveClearErrorsNotCrashes) {
  HostileNode node;
  TempDir work;
  auto state = [&](const std::string& id, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"device",        "state",  id,        "--at",
                                     "1796000000000", "--node", node.url()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_custos(work.path(), args);
  };
  CommandResult empty = state("empty-log");
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_TRUE(contains(empty.out, "no entries yet")) << empty.out;
  EXPECT_FALSE(contains(empty.out, "#18446744073709551615")) << empty.out;

  CommandResult typed = state("typed-wrong");
  EXPECT_NE(typed.exit_code, 0) << typed.out << typed.err;
  EXPECT_LT(typed.exit_code, 128) << "killed by a signal: " << typed.err;
  EXPECT_TRUE(contains(typed.err, "unexpected answer from the node")) << typed.err;

  // Another command than `device`: the same clear error (main() catches).
  CommandResult order = run_custos(work.path(), {"order", "show", "o-1", "--node", node.url()});
  EXPECT_NE(order.exit_code, 0) << order.out << order.err;
  EXPECT_LT(order.exit_code, 128) << "killed by a signal: " << order.err;
  EXPECT_TRUE(contains(order.err, "unexpected answer from the node")) << order.err;

  const std::string evidence = work.path() + "/deep/evidence";
  CommandResult path = state("path-evidence", {"--evidence-dir", evidence});
  EXPECT_NE(path.exit_code, 0) << path.out;
  EXPECT_TRUE(contains(path.err, "not an entry id")) << path.err;
  EXPECT_FALSE(std::filesystem::exists(work.path() + "/escaped.cose"));
  EXPECT_FALSE(std::filesystem::exists(work.path() + "/deep/escaped.cose"));
  EXPECT_TRUE(std::filesystem::is_empty(evidence));
}

}  // namespace
}  // namespace custos::integration
