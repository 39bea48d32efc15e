// The `custos` binary as a person uses it against a running node: make keys,
// register them, sign, submit, fetch, verify offline, audit. Checks exit
// codes (docs/operations.md: 0 ok, 1 refused/invalid, 2 usage, 3 I/O) and
// that failures say why on stderr.
#include <sys/stat.h>

#include "cose/receipt.h"
#include "integration/harness.h"

namespace custos::integration {
namespace {

class CliTest : public ::testing::Test {
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
  void SetUp() override {
    ASSERT_NE(node_, nullptr);
    ASSERT_TRUE(node_->running());
  }

  // Runs custos with the files of this test in `work_`.
  CommandResult custos(const std::vector<std::string>& args) {
    return run_custos(work_.path(), args);
  }
  std::string file(const std::string& name) const { return work_ / name; }
  std::string node_url() const { return node_->url(); }

  // keygen + keys register; returns the kid.
  std::string make_registered_key(const std::string& name, const std::string& alg = "ed25519") {
    CommandResult kg = custos({"keygen", "--alg", alg, "--out", file(name + ".key"), "--json"});
    EXPECT_EQ(kg.exit_code, 0) << kg.err;
    CommandResult reg =
        custos({"keys", "register", "--node", node_url(), "--admin-key", node_->admin_key_path(),
                "--key", file(name + ".pub"), "--name", name, "--json"});
    EXPECT_EQ(reg.exit_code, 0) << reg.err;
    return Json::parse(kg.out, nullptr, false).value("kid", "");
  }

  static TempDir* dir_;
  static NodeProcess* node_;
  TempDir work_;
};

TempDir* CliTest::dir_ = nullptr;
NodeProcess* CliTest::node_ = nullptr;

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

TEST_F(CliTest, KeygenWritesBothAlgorithms) {
  CommandResult ed = custos({"keygen", "--out", file("ed.key")});
  ASSERT_EQ(ed.exit_code, 0) << ed.err;
  EXPECT_NE(ed.out.find("Ed25519 key written to"), std::string::npos) << ed.out;
  auto ed_priv = crypto::PrivateKey::from_pem(slurp(file("ed.key")));
  auto ed_pub = crypto::PublicKey::from_pem(slurp(file("ed.pub")));
  ASSERT_TRUE(ed_priv.ok() && ed_pub.ok());
  EXPECT_EQ(ed_priv->algorithm(), crypto::Algorithm::kEd25519);
  EXPECT_EQ(ed_priv->public_key().kid(), ed_pub->kid());
  EXPECT_NE(ed.out.find("kid " + to_hex(ed_pub->kid())), std::string::npos) << ed.out;
  struct stat st {};
  ASSERT_EQ(::stat(file("ed.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "a private key must not be readable by others";

  CommandResult es = custos({"keygen", "--alg", "es256", "--out", file("es.key"), "--json"});
  ASSERT_EQ(es.exit_code, 0) << es.err;
  Json j = Json::parse(es.out, nullptr, false);
  EXPECT_EQ(j.value("alg", ""), "ES256");
  auto es_pub = crypto::PublicKey::from_pem(slurp(file("es.pub")));
  ASSERT_TRUE(es_pub.ok());
  EXPECT_EQ(es_pub->algorithm(), crypto::Algorithm::kES256);
  EXPECT_EQ(j.value("kid", ""), to_hex(es_pub->kid()));
  EXPECT_EQ(j.value("public_key", ""), file("es.pub"));

  // Never overwrites a key.
  const std::string before = slurp(file("ed.key"));
  CommandResult again = custos({"keygen", "--out", file("ed.key")});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;
  EXPECT_EQ(slurp(file("ed.key")), before);
}

TEST_F(CliTest, SignSubmitFetchVerifyAuditWorkflow) {
  const std::string kid = make_registered_key("infusion-pump");
  CommandResult show = custos({"keys", "show", "--node", node_url(), kid});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  Json k = Json::parse(show.out, nullptr, false);
  EXPECT_EQ(k.value("name", ""), "infusion-pump");
  EXPECT_EQ(k.value("status", ""), "active");
  EXPECT_EQ(k["roles"], Json::array({"issuer"}));

  // sign --json: the payload is stored as CBOR and served back as the same JSON.
  const Json doc = {{"rate_ml_h", 12.5}, {"drug", "heparin"}, {"alarms", Json::array()}};
  spit(file("reading.json"), doc.dump());
  auto sign = [&](const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{
        "sign",  "--key",  file("infusion-pump.key"), "--iss", "infusion-pump", "--sub",
        "bed-7", "--json", file("reading.json"),      "--out", file(out)};
    args.insert(args.end(), extra.begin(), extra.end());
    return custos(args);
  };
  CommandResult s1 = sign("s1.cose");
  ASSERT_EQ(s1.exit_code, 0) << s1.err;
  EXPECT_NE(s1.err.find("sequence 1"), std::string::npos) << s1.err;
  EXPECT_EQ(trim(slurp(file("infusion-pump.key.seq"))), "1");
  CommandResult s2 = sign("s2.cose");
  ASSERT_EQ(s2.exit_code, 0) << s2.err;
  EXPECT_EQ(trim(slurp(file("infusion-pump.key.seq"))), "2");
  auto st2 = cose::parse_statement(to_bytes(slurp(file("s2.cose"))));
  ASSERT_TRUE(st2.ok()) << st2.status().to_string();
  EXPECT_EQ(st2->header.sequence, 2u);
  EXPECT_EQ(st2->header.issuer, "infusion-pump");
  EXPECT_EQ(st2->header.subject, "bed-7");
  EXPECT_EQ(to_hex(st2->header.kid), kid);
  // An explicit sequence file counts on from what it holds.
  spit(file("custom.seq"), "40\n");
  CommandResult s3 = sign("s3.cose", {"--seq-file", file("custom.seq")});
  ASSERT_EQ(s3.exit_code, 0) << s3.err;
  EXPECT_EQ(trim(slurp(file("custom.seq"))), "41");
  EXPECT_EQ(trim(slurp(file("infusion-pump.key.seq"))), "2");

  CommandResult sub = custos({"submit", "--node", node_url(), "--json", file("s1.cose")});
  ASSERT_EQ(sub.exit_code, 0) << sub.err;
  Json r1 = Json::parse(sub.out, nullptr, false);
  EXPECT_EQ(r1.value("status", ""), "registered");
  const std::string id1 = r1.value("id", "");
  CommandResult sub23 =
      custos({"submit", "--node", node_url(), "--json", file("s2.cose"), file("s3.cose")});
  ASSERT_EQ(sub23.exit_code, 0) << sub23.err;
  EXPECT_NE(sub23.out.find("sequence_gap"), std::string::npos) << "41 after 2 skips 3..40";
  // Submitting again is harmless.
  CommandResult resub = custos({"submit", "--node", node_url(), "--json", file("s1.cose")});
  ASSERT_EQ(resub.exit_code, 0) << resub.err;
  EXPECT_EQ(Json::parse(resub.out, nullptr, false).value("status", ""), "already-registered");

  CommandResult get = custos({"get", "--node", node_url(), id1});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  Json e = Json::parse(get.out, nullptr, false);
  EXPECT_EQ(e["payload"], doc);
  EXPECT_EQ(e.value("issuer", ""), "infusion-pump");
  CommandResult get_out = custos({"get", "--node", node_url(), id1, "--out", file("s1.copy")});
  ASSERT_EQ(get_out.exit_code, 0) << get_out.err;
  EXPECT_EQ(slurp(file("s1.copy")), slurp(file("s1.cose")));

  CommandResult rc = custos({"receipt", "--node", node_url(), id1, "--out", file("r1.cose")});
  ASSERT_EQ(rc.exit_code, 0) << rc.err;
  CommandResult v = custos({"verify", "--statement", file("s1.cose"), "--receipt", file("r1.cose"),
                            "--node-key", node_->node_pub_path()});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.out.rfind("valid: entry " + id1, 0), 0u) << v.out;
  CommandResult vg = custos({"verify", "--statement", file("s1.cose"), "--receipt", file("r1.cose"),
                             "--genesis", node_->data_dir() + "/genesis.json", "--json"});
  EXPECT_EQ(vg.exit_code, 0) << vg.err;
  Json vj = Json::parse(vg.out, nullptr, false);
  EXPECT_EQ(vj.value("valid", false), true);
  EXPECT_EQ(vj.value("entry_id", ""), id1);
  EXPECT_EQ(vj["leaf_index"], r1["index"]);

  // Tampering with either file is caught, with a reason, exit 1.
  std::string receipt = slurp(file("r1.cose"));
  receipt.back() ^= 0x01;  // inside the node signature
  spit(file("r1.bad"), receipt);
  CommandResult bad_r = custos({"verify", "--statement", file("s1.cose"), "--receipt",
                                file("r1.bad"), "--node-key", node_->node_pub_path()});
  EXPECT_EQ(bad_r.exit_code, 1);
  EXPECT_NE(bad_r.err.find("invalid: "), std::string::npos) << bad_r.err;
  std::string statement = slurp(file("s1.cose"));
  const size_t at = statement.find("heparin");
  ASSERT_NE(at, std::string::npos);
  statement[at] = 'H';
  spit(file("s1.bad"), statement);
  CommandResult bad_s = custos({"verify", "--statement", file("s1.bad"), "--receipt",
                                file("r1.cose"), "--node-key", node_->node_pub_path()});
  EXPECT_EQ(bad_s.exit_code, 1);
  EXPECT_NE(bad_s.err.find("invalid: "), std::string::npos) << bad_s.err;
  CommandResult other = custos({"verify", "--statement", file("s2.cose"), "--receipt",
                                file("r1.cose"), "--node-key", node_->node_pub_path()});
  EXPECT_EQ(other.exit_code, 1) << "a receipt is for one statement only";
  CommandResult wrong_key = custos({"verify", "--statement", file("s1.cose"), "--receipt",
                                    file("r1.cose"), "--node-key", file("infusion-pump.pub")});
  EXPECT_EQ(wrong_key.exit_code, 1);
  EXPECT_NE(wrong_key.err.find("invalid: "), std::string::npos);
  CommandResult missing = custos({"verify", "--statement", file("nope.cose"), "--receipt",
                                  file("r1.cose"), "--node-key", node_->node_pub_path()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nope.cose"), std::string::npos) << missing.err;

  // Checkpoint verified against the node key, and it covers what we wrote.
  CommandResult cp = custos({"checkpoint", "--node", node_url(), "--node-key",
                             node_->node_pub_path(), "--out", file("cp.cose")});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  Json cj = Json::parse(cp.out, nullptr, false);
  EXPECT_EQ(cj.value("valid", false), true);
  EXPECT_GT(cj["log_size"].get<uint64_t>(), r1["index"].get<uint64_t>());
  EXPECT_FALSE(slurp(file("cp.cose")).empty());
  CommandResult cp_bad =
      custos({"checkpoint", "--node", node_url(), "--node-key", file("infusion-pump.pub")});
  EXPECT_EQ(cp_bad.exit_code, 1) << cp_bad.out;
  EXPECT_NE(cp_bad.err.find("error: "), std::string::npos);

  CommandResult ls =
      custos({"entries", "--node", node_url(), "--issuer", "infusion-pump", "--limit", "2"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  Json page = Json::parse(ls.out, nullptr, false);
  ASSERT_EQ(page["entries"].size(), 2u);
  EXPECT_EQ(page["entries"][0].value("id", ""), id1);
  ASSERT_TRUE(page["next_cursor"].is_string());
  CommandResult ls2 = custos({"entries", "--node", node_url(), "--issuer", "infusion-pump",
                              "--cursor", page["next_cursor"].get<std::string>()});
  ASSERT_EQ(ls2.exit_code, 0) << ls2.err;
  Json page2 = Json::parse(ls2.out, nullptr, false);
  ASSERT_EQ(page2["entries"].size(), 1u);
  EXPECT_EQ(page2["entries"][0]["sequence"].get<uint64_t>(), 41u);
  EXPECT_TRUE(page2["next_cursor"].is_null());

  // audit reads the data directory beside the running node.
  auto client = make_client(node_->port());
  const uint64_t size = log_size(*client);
  CommandResult audit = custos({"audit", "--data-dir", node_->data_dir(), "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err << audit.out;
  Json aj = Json::parse(audit.out, nullptr, false);
  EXPECT_EQ(aj.value("ok", false), true);
  EXPECT_GE(aj["entries"].get<uint64_t>(), size);
  EXPECT_GE(aj["sequence_gaps"].get<uint64_t>(), 1u);
  EXPECT_GE(aj["signatures_verified"].get<uint64_t>(), aj["entries"].get<uint64_t>());
  CommandResult audit_text = custos({"audit", "--data-dir", node_->data_dir()});
  EXPECT_EQ(audit_text.exit_code, 0) << audit_text.err;
  EXPECT_EQ(audit_text.out.rfind("audit passed: ", 0), 0u) << audit_text.out;

  // Revocation: the key can no longer sign; the CLI says so and exits 1.
  CommandResult rev = custos({"keys", "revoke", "--node", node_url(), "--admin-key",
                              node_->admin_key_path(), "--kid", kid, "--reason", "lost device"});
  ASSERT_EQ(rev.exit_code, 0) << rev.err;
  CommandResult shown = custos({"keys", "show", "--node", node_url(), kid});
  EXPECT_EQ(Json::parse(shown.out, nullptr, false).value("status", ""), "revoked");
  ASSERT_EQ(sign("s4.cose").exit_code, 0);
  CommandResult refused = custos({"submit", "--node", node_url(), file("s4.cose")});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("revoked"), std::string::npos) << refused.err;
}

TEST_F(CliTest, BatchSubmitAndEs256Keys) {
  make_registered_key("monitor", "es256");
  std::vector<std::string> files;
  for (int i = 0; i < 3; ++i) {
    spit(file("p.json"), Json{{"spo2", 95 + i}}.dump());
    const std::string out = file("b" + std::to_string(i) + ".cose");
    CommandResult s = custos({"sign", "--key", file("monitor.key"), "--iss", "monitor", "--sub",
                              "bed-1", "--json", file("p.json"), "--out", out});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    files.push_back(out);
  }
  std::vector<std::string> args{"submit", "--node", node_url(), "--batch"};
  args.insert(args.end(), files.begin(), files.end());
  CommandResult sub = custos(args);
  ASSERT_EQ(sub.exit_code, 0) << sub.err;
  Json r = Json::parse(sub.out, nullptr, false);
  ASSERT_EQ(r["results"].size(), 3u);
  for (const auto& item : r["results"]) EXPECT_EQ(item.value("status", ""), "registered");
  // A batch with a refused item exits 1.
  spit(file("junk.cose"), "junk");
  args.push_back(file("junk.cose"));
  CommandResult mixed = custos(args);
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_NE(mixed.err.find("refused"), std::string::npos) << mixed.err;
}

TEST_F(CliTest, BadInputFailsWithAMessage) {
  spit(file("garbage.key"),
       "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
  spit(file("p.json"), "{\"a\": 1}");
  CommandResult sign_garbage = custos({"sign", "--key", file("garbage.key"), "--iss", "x", "--sub",
                                       "y", "--json", file("p.json"), "--out", file("o.cose")});
  EXPECT_NE(sign_garbage.exit_code, 0);
  EXPECT_NE(sign_garbage.err.find("garbage.key"), std::string::npos) << sign_garbage.err;
  EXPECT_FALSE(file_exists(file("o.cose")));

  CommandResult reg_garbage = custos({"keys", "register", "--node", node_url(), "--admin-key",
                                      node_->admin_key_path(), "--key", file("garbage.key")});
  EXPECT_NE(reg_garbage.exit_code, 0);
  EXPECT_NE(reg_garbage.err.find("not a PEM"), std::string::npos) << reg_garbage.err;

  CommandResult alg = custos({"keygen", "--alg", "rsa2048", "--out", file("rsa.key")});
  EXPECT_NE(alg.exit_code, 0);
  EXPECT_NE(alg.err.find("rsa2048"), std::string::npos) << alg.err;
  EXPECT_FALSE(file_exists(file("rsa.key")));

  // Missing required flags: CLI11 names the flag; exit 2 (usage).
  CommandResult no_out = custos({"keygen"});
  EXPECT_EQ(no_out.exit_code, 2);
  EXPECT_NE(no_out.err.find("--out"), std::string::npos) << no_out.err;
  CommandResult no_iss = custos({"sign", "--key", file("garbage.key"), "--sub", "y", "--json",
                                 file("p.json"), "--out", file("o.cose")});
  EXPECT_EQ(no_iss.exit_code, 2);
  EXPECT_NE(no_iss.err.find("--iss"), std::string::npos) << no_iss.err;
  CommandResult no_kid = custos({"keys", "revoke", "--admin-key", node_->admin_key_path()});
  EXPECT_EQ(no_kid.exit_code, 2);
  EXPECT_NE(no_kid.err.find("--kid"), std::string::npos) << no_kid.err;
  CommandResult no_cmd = custos({});
  EXPECT_EQ(no_cmd.exit_code, 2);
  CommandResult unknown = custos({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);

  // Two payload sources, or a payload that is not JSON.
  ASSERT_EQ(custos({"keygen", "--out", file("k.key")}).exit_code, 0);
  CommandResult two =
      custos({"sign", "--key", file("k.key"), "--iss", "x", "--sub", "y", "--json", file("p.json"),
              "--payload", file("p.json"), "--out", file("o.cose")});
  EXPECT_NE(two.exit_code, 0);
  EXPECT_NE(two.err.find("exactly one"), std::string::npos) << two.err;
  spit(file("bad.json"), "{not json");
  CommandResult not_json = custos({"sign", "--key", file("k.key"), "--iss", "x", "--sub", "y",
                                   "--json", file("bad.json"), "--out", file("o.cose")});
  EXPECT_NE(not_json.exit_code, 0);
  EXPECT_NE(not_json.err.find("not valid JSON"), std::string::npos) << not_json.err;

  // Submitting garbage is refused by the node (exit 1); an unreachable node is exit 3.
  spit(file("junk.cose"), "junk");
  CommandResult junk = custos({"submit", "--node", node_url(), file("junk.cose")});
  EXPECT_EQ(junk.exit_code, 1);
  EXPECT_NE(junk.err.find("malformed"), std::string::npos) << junk.err;
  CommandResult dead = custos(
      {"get", "--node", "http://127.0.0.1:" + std::to_string(free_port()), std::string(64, 'a')});
  EXPECT_EQ(dead.exit_code, 3);
  EXPECT_NE(dead.err.find("cannot reach"), std::string::npos) << dead.err;
  CommandResult missing_entry = custos({"get", "--node", node_url(), std::string(64, 'a')});
  EXPECT_NE(missing_entry.exit_code, 0);
  EXPECT_NE(missing_entry.err.find("404"), std::string::npos) << missing_entry.err;
  CommandResult verify_no_key =
      custos({"verify", "--statement", file("junk.cose"), "--receipt", file("junk.cose")});
  EXPECT_NE(verify_no_key.exit_code, 0);
  EXPECT_NE(verify_no_key.err.find("invalid: "), std::string::npos) << verify_no_key.err;
  CommandResult audit_missing = custos({"audit", "--data-dir", file("no-such-dir")});
  EXPECT_NE(audit_missing.exit_code, 0);
  EXPECT_NE(audit_missing.err.find("audit FAILED"), std::string::npos) << audit_missing.err;
}

}  // namespace
}  // namespace custos::integration

namespace custos::integration {
namespace {

// A second node started on a port a node already listens on must refuse to
// start: with SO_REUSEPORT (httplib's default) it would bind too, and the
// kernel would hand half of the clients to another ledger.
TEST(NodeStartTest, ASecondNodeOnTheSamePortRefusesToStart) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/first");
  NodeProcess first(dir.path() + "/first");
  ASSERT_TRUE(first.start());
  const std::string other = dir.path() + "/second";
  CommandResult second = run_custos(dir.path(), {"node", "--dev", "--data-dir", other, "--listen",
                                                 "127.0.0.1:" + std::to_string(first.port())});
  EXPECT_EQ(second.exit_code, 3) << second.err;
  EXPECT_NE(second.err.find("cannot bind"), std::string::npos) << second.err;
  // The first node still answers, and every answer comes from it.
  auto client = make_client(first.port());
  for (int i = 0; i < 20; ++i) {
    auto res = client->Get("/v1/node");
    ASSERT_TRUE(res);
    EXPECT_EQ(Json::parse(res->body).value("kid", ""), to_hex(first.node_key().kid()));
  }
  EXPECT_EQ(first.stop(), 0);
}

}  // namespace
}  // namespace custos::integration
