// `custos init` and `custos node --config`: what they write, and every way
// an operator's input can be wrong (clear message, non-zero exit, nothing
// started). Running consortia are tested in cluster_test.cc.
#include "harness.h"

namespace custos::integration {
namespace {

class ConsortiumCliTest : public ::testing::Test {
 protected:
  CommandResult custos(const std::vector<std::string>& args) {
    return run_custos(work_.path(), args);
  }
  std::string path(const std::string& name) const { return work_.path() + "/" + name; }
  TempDir work_;
};

TEST_F(ConsortiumCliTest, InitWritesAConsortiumOnce) {
  CommandResult r = custos({"init", "--dir", path("c"), "--nodes", "4", "--consortium", "test"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json genesis = Json::parse(slurp(path("c/genesis.json")));
  EXPECT_EQ(genesis.value("consortium", ""), "test");
  EXPECT_EQ(genesis["nodes"].size(), 4u);
  EXPECT_EQ(genesis["admins"].size(), 1u);
  for (int i = 0; i < 4; ++i) {
    const std::string dir = path("c/node-" + std::to_string(i));
    EXPECT_NE(slurp(dir + "/node.crt").find("BEGIN CERTIFICATE"), std::string::npos);
    EXPECT_NE(slurp(dir + "/node.key").find("BEGIN PRIVATE KEY"), std::string::npos);
    Json config = Json::parse(slurp(dir + "/config.json"));
    EXPECT_EQ(config.value("index", -1), i);
    EXPECT_EQ(config["peers"].size(), 3u) << "every other node";
    EXPECT_EQ(genesis["nodes"][i].value("public_key_pem", ""), slurp(dir + "/node.pub"));
  }
  EXPECT_EQ(std::filesystem::status(path("c/admin/admin.key")).permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none)
      << "private keys are not world-readable";

  CommandResult again = custos({"init", "--dir", path("c"), "--nodes", "4"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already holds a consortium"), std::string::npos) << again.err;
}

TEST_F(ConsortiumCliTest, InitRefusesBadOptions) {
  CommandResult zero = custos({"init", "--dir", path("z"), "--nodes", "0"});
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_NE(zero.err.find("--nodes"), std::string::npos) << zero.err;
  CommandResult hosts = custos({"init", "--dir", path("h"), "--nodes", "4", "--hosts", "a,b"});
  EXPECT_EQ(hosts.exit_code, 2);
  EXPECT_NE(hosts.err.find("one host per node"), std::string::npos) << hosts.err;
  CommandResult ports =
      custos({"init", "--dir", path("p"), "--nodes", "4", "--api-base-port", "65534"});
  EXPECT_EQ(ports.exit_code, 2) << ports.err;
  EXPECT_FALSE(std::filesystem::exists(path("z/genesis.json")));
}

TEST_F(ConsortiumCliTest, NodeRefusesBadConfigs) {
  ASSERT_EQ(custos({"init", "--dir", path("c"), "--nodes", "4"}).exit_code, 0);
  const std::string good = slurp(path("c/node-1/config.json"));

  CommandResult missing = custos({"node", "--config", path("nope.json")});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("nope.json"), std::string::npos) << missing.err;

  spit(path("c/node-1/garbage.json"), "{not json");
  CommandResult garbage = custos({"node", "--config", path("c/node-1/garbage.json")});
  EXPECT_NE(garbage.exit_code, 0);
  EXPECT_NE(garbage.err.find("not a JSON object"), std::string::npos) << garbage.err;

  Json bad_port = Json::parse(good);
  bad_port["peer_listen"] = "127.0.0.1:99999";
  spit(path("c/node-1/bad-port.json"), bad_port.dump());
  CommandResult port = custos({"node", "--config", path("c/node-1/bad-port.json")});
  EXPECT_EQ(port.exit_code, 2);
  EXPECT_NE(port.err.find("HOST:PORT"), std::string::npos) << port.err;

  Json no_peers = Json::parse(good);
  no_peers.erase("peers");
  spit(path("c/node-1/no-peers.json"), no_peers.dump());
  CommandResult peers = custos({"node", "--config", path("c/node-1/no-peers.json")});
  EXPECT_EQ(peers.exit_code, 2);
  EXPECT_NE(peers.err.find("'peers'"), std::string::npos) << peers.err;

  // Another node's key under this node's index: it must not start as somebody else.
  Json wrong_key = Json::parse(good);
  wrong_key["key"] = "../node-2/node.key";
  spit(path("c/node-1/wrong-key.json"), wrong_key.dump());
  CommandResult key = custos({"node", "--config", path("c/node-1/wrong-key.json")});
  EXPECT_EQ(key.exit_code, 2);
  EXPECT_NE(key.err.find("is not that node's key"), std::string::npos) << key.err;

  CommandResult both = custos({"node", "--dev", "--config", path("c/node-1/config.json")});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("exclude each other"), std::string::npos) << both.err;
}

}  // namespace
}  // namespace custos::integration
