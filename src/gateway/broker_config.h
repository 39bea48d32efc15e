// The broker the project runs (Mosquitto 2.0) and its TLS material, made by
// `custos broker init` and `custos broker issue` (docs/gateway.md, "Broker"):
//
//   DIR/ca.crt, ca.key             the broker's own CA (ECDSA P-256, OpenSSL)
//   DIR/server.crt, server.key     the broker's certificate (SAN: the hosts)
//   DIR/gateway.crt, gateway.key   the gateway's client certificate
//                                  (CN = kGatewayIdentity)
//   DIR/acl                        per-device topic ACLs
//   DIR/mosquitto.conf             MQTT over TLS on HOST:PORT, client
//                                  certificates required, the CN is the user
//   DIR/broker.json                {"host", "port"} for the other commands
//   DIR/data/                      the broker's persistence
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace custos::gateway {

inline constexpr const char* kGatewayIdentity = "custos-gateway";
inline constexpr int kBrokerPortDefault = 8883;
inline constexpr int kCaValidDays = 3650;
inline constexpr int kCertValidDays = 825;
// Broker-side limits written into mosquitto.conf (docs/gateway.md).
inline constexpr long kBrokerQueuedMessagesMax = 1'000'000;  // per offline session
inline constexpr int kBrokerAutosaveIntervalS = 1;           // persistence written every

struct BrokerInitOptions {
  std::string dir;
  std::string listen_host = "127.0.0.1";
  int port = kBrokerPortDefault;
  std::vector<std::string> hosts;  // names and addresses for the server certificate
};

// Writes everything above; refuses a DIR that already has a CA (kConflict).
Status broker_init(const BrokerInitOptions& options);

// Issues a client certificate for a device (CN = device id) signed by DIR's
// CA: OUT.key (0600) and OUT.crt. The device id must be a topic segment.
Status broker_issue(const std::string& dir, const std::string& device_id,
                    const std::string& out_prefix);

// The mosquitto.conf and ACL text (for tests and docs).
std::string mosquitto_conf(const std::string& dir, const std::string& host, int port);
std::string mosquitto_acl();

struct BrokerEndpoint {
  std::string host;
  int port = 0;
};
Result<BrokerEndpoint> read_broker_json(const std::string& dir);

}  // namespace custos::gateway
