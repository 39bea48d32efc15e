// The mission, end to end, against a real `custos node --dev` process driven
// only through the CLI: organisations, keys, a pump with its own key,
// firmware, an advisory, the order chain and the pump's events; then
// `custos report --genesis --out` names exactly the soft-limit override,
// the advisory and the occlusion alarm, and every step's statement and
// receipt verifies with `custos verify --genesis`. Refusals exit non-zero
// with the field named and store nothing. The tour script runs too.
#include <filesystem>

#include "crypto/hash.h"
#include "integration/harness.h"

namespace custos::integration {
namespace {

class IncidentCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    node_ = new NodeProcess(dir_->path());
    ASSERT_TRUE(node_->start());
  }
  static void TearDownTestSuite() {
    if (node_ && node_->running()) {
      EXPECT_EQ(node_->stop(), 0) << slurp(node_->log_path());
    }
    delete node_;
    delete dir_;
    node_ = nullptr;
    dir_ = nullptr;
  }

  CommandResult custos(const std::vector<std::string>& args) {
    return run_custos(work_.path(), args);
  }
  // Runs a command that must succeed.
  std::string ok(const std::vector<std::string>& args) {
    CommandResult r = custos(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << r.err
                              << r.out;
    return r.out;
  }
  std::string file(const std::string& name) const { return work_ / name; }
  std::string url() const { return node_->url(); }
  std::string genesis() const { return node_->data_dir() + "/genesis.json"; }

  void org(const std::string& id, const std::string& kind) {
    ok({"org", "register", "--node", url(), "--admin-key", node_->admin_key_path(), "--id", id,
        "--name", id, "--kind", kind});
  }
  void actor(const std::string& name, const std::string& org_id, const std::string& role) {
    ok({"keygen", "--out", file(name + ".key")});
    ok({"keys", "register", "--node", url(), "--admin-key", node_->admin_key_path(), "--key",
        file(name + ".pub"), "--name", name, "--org", org_id, "--roles", role});
  }
  // `custos sign --json` + `custos submit` of a domain statement.
  CommandResult post(const std::string& key, const std::string& type, const Json& payload) {
    static int n = 0;
    const std::string json_path = file("stmt-" + std::to_string(n) + ".json");
    const std::string cose_path = file("stmt-" + std::to_string(n++) + ".cose");
    spit(json_path, payload.dump());
    CommandResult s = custos({"sign", "--key", file(key + ".key"), "--iss", key, "--sub",
                              "incident", "--type", "application/vnd.custos." + type + "+cbor",
                              "--json", json_path, "--out", cose_path});
    if (s.exit_code != 0) return s;
    return custos({"submit", "--node", url(), cose_path});
  }
  void posted(const std::string& key, const std::string& type, const Json& payload) {
    CommandResult r = post(key, type, payload);
    EXPECT_EQ(r.exit_code, 0) << type << ": " << r.err;
  }
  static Json bstr(const std::string& hex) { return Json{{"bstr", hex}}; }
  static std::string sha_hex(const std::string& text) {
    return to_hex(crypto::sha256(as_view(text)));
  }

  static TempDir* dir_;
  static NodeProcess* node_;
  TempDir work_;
};

TempDir* IncidentCliTest::dir_ = nullptr;
NodeProcess* IncidentCliTest::node_ = nullptr;

TEST_F(IncidentCliTest, SoftLimitOverrideOnAdvisedFirmwareThenOcclusion) {
  org("acme", "maker");
  org("st-mary", "hospital");
  org("fda", "regulator");
  actor("acme-eng", "acme", "biomed");
  actor("sm-biomed", "st-mary", "biomed");
  actor("dr-house", "st-mary", "prescriber");
  actor("ph-rao", "st-mary", "pharmacist");
  actor("rn-jones", "st-mary", "nurse");
  actor("fda-analyst", "fda", "auditor");
  ok({"keygen", "--alg", "es256", "--out", file("pump-17.key")});
  auto pump = crypto::PublicKey::from_pem(slurp(file("pump-17.pub")));
  ASSERT_TRUE(pump.ok());

  const std::string image = sha_hex("AP-500 firmware 2.0.0");
  posted("acme-eng", "firmware-release",
         {{"version", "2.0.0"},
          {"image_sha256", bstr(image)},
          {"sbom_sha256", bstr(sha_hex("sbom"))},
          {"models", {"AP-500"}}});
  posted("acme-eng", "device-register",
         {{"device", "pump-17"},
          {"class", "infusion-pump"},
          {"model", "AP-500"},
          {"udi", {{"di", "00614141999996"}, {"serial", "SN17"}}},
          {"key", bstr(to_hex(pump->spki_der()))}});
  posted("acme-eng", "device-custody", {{"device", "pump-17"}, {"to", "st-mary"}});
  posted("sm-biomed", "device-install",
         {{"device", "pump-17"}, {"care_area", "icu"}, {"location", "bed 4"}});
  posted("pump-17", "firmware-install", {{"version", "2.0.0"}, {"image_sha256", bstr(image)}});
  posted("sm-biomed", "drug-library", {{"version", "DL-7"}, {"sha256", bstr(sha_hex("DL-7"))}});
  posted("fda-analyst", "advisory",
         {{"id", "ADV-2026-0042"},
          {"maker", "acme"},
          {"models", {"AP-500"}},
          {"versions", {"2.0.0"}},
          {"severity", "high"},
          {"fixed_in", "2.0.1"}});

  const std::vector<std::string> dosing = {"--drug", "heparin", "--dose", "25000",  "--dose-unit",
                                           "[iU]",   "--rate",  "25",     "--vtbi", "250"};
  std::vector<std::string> create = {"order",       "create",
                                     "--node",      url(),
                                     "--key",       file("dr-house.key"),
                                     "--order",     "o-1",
                                     "--patient",   "pseudonym:00112233445566778899aabbccddeeff",
                                     "--care-area", "icu"};
  create.insert(create.end(), dosing.begin(), dosing.end());
  ok(create);
  // Programming before verification must be asked for explicitly.
  std::vector<std::string> program = {
      "order",   "program", "--node",   url(),     "--key",          file("rn-jones.key"),
      "--order", "o-1",     "--device", "pump-17", "--drug-library", "DL-7"};
  program.insert(program.end(), dosing.begin(), dosing.end());
  CommandResult early = custos(program);
  EXPECT_EQ(early.exit_code, 2) << early.err;
  EXPECT_NE(early.err.find("order o-1 has no pharmacy verification; to program without one, pass "
                           "--prev"),
            std::string::npos)
      << early.err;
  ok({"order", "verify", "--node", url(), "--key", file("ph-rao.key"), "--order", "o-1"});
  ok(program);

  const Json limit = {{"kind", "soft"}, {"bound", "upper"}, {"value", 20}, {"unit", "mL/h"}};
  posted("pump-17", "device-event",
         {{"event", "programming"},
          {"order", "o-1"},
          {"drug", "heparin"},
          {"rate_ml_h", 25},
          {"vtbi_ml", 250},
          {"drug_library", "DL-7"}});
  posted("pump-17", "device-event",
         {{"event", "soft-limit-override"}, {"order", "o-1"}, {"limit", limit}, {"rate_ml_h", 25}});
  posted("pump-17", "device-event", {{"event", "start"}, {"order", "o-1"}, {"rate_ml_h", 25}});
  posted("pump-17", "device-event",
         {{"event", "alarm"},
          {"order", "o-1"},
          {"alarm", "occlusion-downstream"},
          {"priority", "high"}});
  posted("pump-17", "device-event", {{"event", "stop"}, {"order", "o-1"}});

  // The readable report: every line's receipt verified offline.
  const std::string out = file("report");
  std::string text = ok({"report", "--node", url(), "o-1", "--genesis", genesis(), "--out", out});
  EXPECT_NE(text.find("Deviations (3)"), std::string::npos) << text;
  EXPECT_NE(text.find("soft-limit-override              attributed to nurse rn-jones (st-mary)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("firmware-under-advisory          attributed to maker acme"),
            std::string::npos);
  EXPECT_NE(text.find("ADV-2026-0042 (high; fixed in 2.0.1"), std::string::npos);
  EXPECT_NE(text.find("alarm                            attributed to device pump-17 (st-mary)"),
            std::string::npos);
  size_t verified_lines = 0;
  for (size_t at = 0; (at = text.find("receipt verified offline: 1 of 1 nodes (quorum 1): node-0",
                                      at)) != std::string::npos;
       ++at)
    ++verified_lines;
  EXPECT_EQ(verified_lines, 8u) << text;

  // The JSON report names exactly those facts.
  Json report = Json::parse(ok({"report", "--node", url(), "o-1", "--json"}), nullptr, false);
  ASSERT_TRUE(report.is_object());
  std::vector<std::string> devs;
  for (const auto& d : report["deviations"]) {
    devs.push_back(d["code"].get<std::string>() + "@" + d["step"].dump() + " " +
                   d["party"]["name"].get<std::string>());
  }
  EXPECT_EQ(devs, (std::vector<std::string>{"firmware-under-advisory@3 acme",
                                            "soft-limit-override@5 rn-jones", "alarm@7 pump-17"}));
  ASSERT_EQ(report["steps"].size(), 8u);
  EXPECT_EQ(report["steps"][4]["firmware"]["version"], "2.0.0");
  EXPECT_EQ(report["deviations"][0]["about"], "ADV-2026-0042");
  EXPECT_EQ(report["deviations"][0]["timing"], "at-the-time");

  // Every statement and receipt written by --out verifies on its own.
  size_t checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out)) {
    if (entry.path().extension() != ".cose") continue;
    std::string receipt = entry.path().string();
    receipt.replace(receipt.size() - 5, 5, ".receipt");
    CommandResult v = custos({"verify", "--statement", entry.path().string(), "--receipt", receipt,
                              "--genesis", genesis()});
    EXPECT_EQ(v.exit_code, 0) << entry.path() << ": " << v.err;
    EXPECT_NE(v.out.find("valid: entry "), std::string::npos) << v.out;
    ++checked;
  }
  EXPECT_EQ(checked, 8u);
  EXPECT_TRUE(std::filesystem::exists(out + "/report.json"));

  // A report checked against another consortium's genesis fails, line by line.
  ok({"init", "--dir", file("other"), "--nodes", "1"});
  CommandResult foreign =
      custos({"report", "--node", url(), "o-1", "--genesis", file("other/genesis.json")});
  EXPECT_EQ(foreign.exit_code, 1) << foreign.err;
  EXPECT_NE(foreign.out.find("RECEIPT INVALID"), std::string::npos) << foreign.out;
}

TEST_F(IncidentCliTest, RefusalsNameTheFieldAndStoreNothing) {
  org("st-luke", "hospital");
  actor("dr-luke", "st-luke", "prescriber");
  auto client = make_client(node_->port());
  const uint64_t size = log_size(*client);
  CommandResult phi =
      custos({"order",   "create", "--node",      url(),        "--key",  file("dr-luke.key"),
              "--order", "o-phi",  "--patient",   "John Smith", "--drug", "heparin",
              "--dose",  "1",      "--dose-unit", "mg",         "--rate", "1",
              "--vtbi",  "1",      "--care-area", "icu"});
  EXPECT_EQ(phi.exit_code, 1) << phi.err;
  EXPECT_NE(phi.err.find("field 'patient': a patient is named only by a pseudonym"),
            std::string::npos)
      << phi.err;
  CommandResult unknown = custos({"report", "--node", url(), "o-unknown"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("order 'o-unknown' is not recorded"), std::string::npos);
  CommandResult show = custos({"order", "show", "--node", url(), "o-unknown"});
  EXPECT_EQ(show.exit_code, 2);
  EXPECT_EQ(log_size(*client), size);
  EXPECT_TRUE(is_problem(client->Get("/v1/orders/o-unknown/report"), 404, "not-found"));
}

// scripts/tour-incident.sh, as the README tour calls it, on a node of its own.
TEST_F(IncidentCliTest, TheTourScriptPrintsTheReport) {
  TempDir root;
  NodeProcess tour_node(root.path());
  ASSERT_TRUE(tour_node.start());
  // __FILE__ is relative to the directory the compiler ran in: the build
  // directory, where the custos binary is.
  std::filesystem::path source(__FILE__);
  if (source.is_relative()) source = std::filesystem::path(custos_binary()).parent_path() / source;
  const std::string script =
      (source.parent_path().parent_path().parent_path() / "scripts/tour-incident.sh").string();
  ASSERT_TRUE(std::filesystem::exists(script)) << script;
  const std::string base = work_ / "tour";
  pid_t pid = spawn({"/usr/bin/env", "CUSTOS_BIN=" + std::string(custos_binary()), "TOUR_TAG=it1",
                     "bash", script, tour_node.url(), tour_node.data_dir(), work_ / "tour-work"},
                    base + ".out", base + ".err");
  ASSERT_EQ(wait_exit(pid), 0) << slurp(base + ".err") << slurp(base + ".out");
  const std::string out = slurp(base + ".out");
  EXPECT_NE(out.find("Deviations (3)"), std::string::npos) << out;
  EXPECT_NE(out.find("soft-limit-override"), std::string::npos);
  EXPECT_NE(out.find("occlusion-downstream"), std::string::npos);
  EXPECT_EQ(out.find("RECEIPT INVALID"), std::string::npos);
  EXPECT_EQ(tour_node.stop(), 0);
}

}  // namespace
}  // namespace custos::integration
