// Clinical content off the ledger, on a real node through the CLI: a
// clinician stores a record, a reader's access is logged before the content
// comes back, the hospital's org-admin erases the patient's content, reads
// are refused from then on (also after a crash and restart), every receipt of
// the patient's entries still verifies offline, the ledger's files never hold
// the content, and `custos audit` passes.
#include <sys/stat.h>

#include <filesystem>

#include "integration/harness.h"

namespace custos::integration {
namespace {

const std::string kPatient = "pseudonym:5eed0123456789abcdef5eed01234567";
const std::string kContent = "Dx: type 2 diabetes; HbA1c 7.9% (2026-11-02)";

class RecordsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(node_.start()); }
  void TearDown() override {
    if (node_.running()) {
      EXPECT_EQ(node_.stop(), 0) << slurp(node_.log_path());
    }
  }

  CommandResult custos(const std::vector<std::string>& args) {
    return run_custos(work_.path(), args);
  }
  std::string file(const std::string& name) const { return work_ / name; }

  // keygen + keys register for an organisation with one role.
  void make_key(const std::string& name, const std::string& org, const std::string& role) {
    CommandResult kg = custos({"keygen", "--out", file(name + ".key")});
    ASSERT_EQ(kg.exit_code, 0) << kg.err;
    CommandResult reg =
        custos({"keys", "register", "--node", node_.url(), "--admin-key", node_.admin_key_path(),
                "--key", file(name + ".pub"), "--name", name, "--org", org, "--roles", role});
    ASSERT_EQ(reg.exit_code, 0) << reg.err;
  }
  CommandResult read_record(const std::string& out) {
    return custos({"record", "get", "--node", node_.url(), "--key", file("doctor.key"), "--patient",
                   kPatient, "--record", "dx-1", "--purpose", "TREAT", "--who", "u-4711", "--out",
                   out});
  }
  std::string patient_dir() const {
    return node_.data_dir() + "/vault/p/" + kPatient.substr(std::string("pseudonym:").size());
  }

  TempDir dir_;
  TempDir work_;
  NodeProcess node_{dir_.path()};
};

bool file_contains(const std::string& path, const std::string& needle) {
  return slurp(path).find(needle) != std::string::npos;
}

TEST_F(RecordsTest, PutReadEraseOnARealNode) {
  CommandResult org =
      custos({"org", "register", "--node", node_.url(), "--admin-key", node_.admin_key_path(),
              "--id", "st-mary", "--name", "St Mary", "--kind", "hospital"});
  ASSERT_EQ(org.exit_code, 0) << org.err;
  make_key("nurse", "st-mary", "nurse");
  make_key("doctor", "st-mary", "prescriber");
  make_key("sm-admin", "st-mary", "org-admin");
  spit(file("dx.txt"), kContent);

  CommandResult put = custos({"record", "put", "--node", node_.url(), "--key", file("nurse.key"),
                              "--patient", kPatient, "--record", "dx-1", "--content",
                              file("dx.txt"), "--content-type", "text/plain", "--json"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(Json::parse(put.out)["entry"]["status"], "registered");

  CommandResult got = read_record(file("read.txt"));
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(slurp(file("read.txt")), kContent);
  EXPECT_NE(got.err.find("matches the ledger"), std::string::npos) << got.err;

  CommandResult acc =
      custos({"record", "accesses", "--node", node_.url(), "--patient", kPatient, "--json"});
  ASSERT_EQ(acc.exit_code, 0) << acc.err;
  Json accesses = Json::parse(acc.out)["accesses"];
  ASSERT_EQ(accesses.size(), 1u);
  EXPECT_EQ(accesses[0]["purpose"], "TREAT");
  EXPECT_EQ(accesses[0]["who"], "u-4711");
  EXPECT_EQ(accesses[0]["reader"]["name"], "doctor");
  CommandResult acc_text =
      custos({"record", "accesses", "--node", node_.url(), "--patient", kPatient});
  EXPECT_NE(acc_text.out.find("TREAT"), std::string::npos) << acc_text.out;

  CommandResult erase =
      custos({"record", "erase", "--node", node_.url(), "--key", file("sm-admin.key"), "--patient",
              kPatient, "--reason", "patient-request"});
  ASSERT_EQ(erase.exit_code, 0) << erase.err;
  CommandResult refused = read_record(file("read2.txt"));
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("HTTP 410"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(file("read2.txt")));
  EXPECT_FALSE(std::filesystem::exists(patient_dir() + "/key"));

  // Every entry about the patient still proves offline.
  auto client = make_client(node_.port());
  auto page = client->Get("/v1/entries?ref=" + percent_encode("patient:" + kPatient));
  ASSERT_TRUE(page && page->status == 200);
  Json entries = Json::parse(page->body)["entries"];
  ASSERT_EQ(entries.size(), 3u);  // record, access, erasure
  for (const auto& e : entries) {
    const std::string id = e["id"];
    auto st = client->Get("/v1/entries/" + id, {{"Accept", "application/cose"}});
    auto rc = client->Get("/v1/entries/" + id + "/receipt");
    ASSERT_TRUE(st && st->status == 200 && rc && rc->status == 200);
    spit(file(id + ".cose"), st->body);
    spit(file(id + ".receipt"), rc->body);
    CommandResult v =
        custos({"verify", "--statement", file(id + ".cose"), "--receipt", file(id + ".receipt"),
                "--genesis", node_.data_dir() + "/genesis.json"});
    EXPECT_EQ(v.exit_code, 0) << v.err << v.out;
    EXPECT_EQ(st->body.find("type 2 diabetes"), std::string::npos);
  }

  // The ledger's own files never held the content.
  for (const auto& f : std::filesystem::recursive_directory_iterator(node_.data_dir() + "/db")) {
    if (f.is_regular_file()) {
      EXPECT_FALSE(file_contains(f.path().string(), "diabetes")) << f.path();
    }
  }
  struct stat st {};
  ASSERT_EQ(::stat((node_.data_dir() + "/vault.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  CommandResult audit = custos({"audit", "--data-dir", node_.data_dir()});
  EXPECT_EQ(audit.exit_code, 0) << audit.err << audit.out;
}

// An erasure registered without the records route (as it would arrive
// through another node) reaches the vault by the node's sweep, and a node
// killed and restarted still refuses the read.
TEST_F(RecordsTest, ErasuresOnTheLedgerReachTheVaultAcrossACrash) {
  auto client = make_client(node_.port());
  const crypto::PrivateKey admin = node_.admin_key();
  auto sign_for = [&](const crypto::PrivateKey& key, const std::string& name, std::string_view type,
                      const Json& payload, uint64_t seq) {
    cose::StatementHeader h;
    h.content_type = std::string(type);
    h.issuer = name;
    h.subject = kPatient;
    h.issued_at_s = unix_seconds();
    h.sequence = seq;
    return cose::sign_statement(key, h, cbor::encode(cbor::from_json(payload).value()));
  };
  Bytes org_st = sign_admin(
      *client, admin, "application/vnd.custos.org-register+cbor", "org",
      cbor::encode(
          cbor::from_json({{"id", "st-mary"}, {"name", "St Mary"}, {"kind", "hospital"}}).value()));
  ASSERT_EQ(post_cose(*client, org_st)->status, 201);
  make_key("nurse", "st-mary", "nurse");
  make_key("sm-admin", "st-mary", "org-admin");
  make_key("doctor", "st-mary", "prescriber");
  spit(file("dx.txt"), kContent);
  CommandResult put =
      custos({"record", "put", "--node", node_.url(), "--key", file("nurse.key"), "--patient",
              kPatient, "--record", "dx-1", "--content", file("dx.txt")});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  ASSERT_TRUE(std::filesystem::exists(patient_dir() + "/key"));

  auto org_admin = crypto::PrivateKey::from_pem(slurp(file("sm-admin.key"))).value();
  Bytes erasure = sign_for(org_admin, "sm-admin", "application/vnd.custos.record-erasure+cbor",
                           {{"patient", kPatient}, {"reason", "consent-withdrawn"}}, 1);
  auto res = post_cose(*client, erasure);  // POST /v1/entries: not through the records route
  ASSERT_TRUE(res && res->status == 201) << (res ? res->body : "no answer");
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (std::filesystem::exists(patient_dir() + "/key") && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(std::filesystem::exists(patient_dir() + "/key")) << "the sweep did not erase";

  ASSERT_EQ(node_.kill(), 128 + SIGKILL);
  ASSERT_TRUE(node_.start());
  CommandResult refused = read_record(file("read.txt"));
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("HTTP 410"), std::string::npos) << refused.err;
  EXPECT_TRUE(std::filesystem::exists(patient_dir() + "/erased"));
  CommandResult audit = custos({"audit", "--data-dir", node_.data_dir()});
  EXPECT_EQ(audit.exit_code, 0) << audit.err << audit.out;
}

}  // namespace
}  // namespace custos::integration
