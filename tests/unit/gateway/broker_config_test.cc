// `custos broker init|issue`: the files, certificates that chain to the CA
// with the right names, the ACL and configuration lines the gateway's
// guarantees rest on, and refusals.
#include "gateway/broker_config.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/temp_dir.h"

namespace custos::gateway {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

X509Ptr load_cert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return nullptr;
  X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return cert;
}

std::string common_name(X509* cert) {
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

bool signed_by(X509* cert, X509* ca) {
  return X509_verify(cert, X509_get0_pubkey(ca)) == 1;
}

TEST(BrokerConfig, InitWritesChainedCertificatesAclAndConf) {
  testutil::TempDir dir;
  const std::string d = dir.path() + "/broker";
  ASSERT_TRUE(broker_init({d, "127.0.0.1", 18883, {"mqtt.example.org"}}).ok());
  for (const char* f : {"ca.crt", "ca.key", "server.crt", "server.key", "gateway.crt",
                        "gateway.key", "acl", "mosquitto.conf", "broker.json"}) {
    EXPECT_TRUE(std::filesystem::exists(d + "/" + f)) << f;
  }
  EXPECT_EQ(
      std::filesystem::status(d + "/ca.key").permissions() & std::filesystem::perms::others_read,
      std::filesystem::perms::none);
  auto ca = load_cert(d + "/ca.crt");
  auto server = load_cert(d + "/server.crt");
  auto gateway = load_cert(d + "/gateway.crt");
  ASSERT_TRUE(ca && server && gateway);
  EXPECT_TRUE(signed_by(ca.get(), ca.get()));
  EXPECT_TRUE(signed_by(server.get(), ca.get()));
  EXPECT_TRUE(signed_by(gateway.get(), ca.get()));
  EXPECT_EQ(common_name(gateway.get()), kGatewayIdentity);
  EXPECT_EQ(X509_check_host(server.get(), "mqtt.example.org", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(server.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.1", 0), 1);

  const std::string conf = slurp(d + "/mosquitto.conf");
  for (const char* line :
       {"require_certificate true", "use_identity_as_username true", "allow_anonymous false",
        "persistence true", "listener 18883 127.0.0.1"}) {
    EXPECT_NE(conf.find(line), std::string::npos) << line;
  }
  const std::string acl = slurp(d + "/acl");
  EXPECT_NE(acl.find("pattern write iomt/v1/+/+/+/%u/event"), std::string::npos);
  EXPECT_NE(acl.find("pattern read iomt/v1/+/+/+/%u/ack"), std::string::npos);
  EXPECT_EQ(acl.find("pattern write iomt/v1/+/+/+/%u/ack"), std::string::npos)
      << "devices must not forge acks";
  auto ep = read_broker_json(d);
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->port, 18883);

  EXPECT_EQ(broker_init({d, "127.0.0.1", 18883, {}}).code(), ErrorCode::kConflict)
      << "a second init would replace the CA every device trusts";
}

TEST(BrokerConfig, IssuesDeviceCertificatesAndRefusesBadIds) {
  testutil::TempDir dir;
  const std::string d = dir.path() + "/broker";
  ASSERT_TRUE(broker_init({d, "127.0.0.1", 18883, {}}).ok());
  ASSERT_TRUE(broker_issue(d, "pump-17", dir.path() + "/pump-17").ok());
  auto ca = load_cert(d + "/ca.crt");
  auto dev = load_cert(dir.path() + "/pump-17.crt");
  ASSERT_TRUE(dev);
  EXPECT_EQ(common_name(dev.get()), "pump-17");
  EXPECT_TRUE(signed_by(dev.get(), ca.get()));
  for (const char* bad : {"", "pump/17", "pump+17", "#", kGatewayIdentity}) {
    EXPECT_FALSE(broker_issue(d, bad, dir.path() + "/bad").ok()) << bad;
  }
  EXPECT_FALSE(broker_issue(dir.path() + "/nothing", "pump-18", dir.path() + "/x").ok());
}

}  // namespace
}  // namespace custos::gateway
