#include "gateway/broker_config.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "crypto/openssl.h"
#include "gateway/limits.h"
#include "gateway/topic.h"

namespace custos::gateway {

namespace {

namespace ossl = crypto::openssl;

constexpr long kClockSkewS = 3600;  // certificates valid from an hour ago

Status failure(const char* what) {
  return error(ErrorCode::kInternal, std::string(what) + ": " + ossl::take_openssl_error());
}

Result<ossl::PkeyPtr> new_ec_key() {
  ossl::PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return failure("EVP_EC_gen");
  return key;
}

Status add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ossl::ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return failure("X509_add_ext");
  return Status();
}

struct CertSpec {
  std::string cn;
  int valid_days = kCertValidDays;
  bool ca = false;
  bool server = false;
  std::vector<std::string> hosts;  // subjectAltName for a server
};

// A certificate for `key`, signed by `issuer_key` (self-signed when
// `issuer` is null).
Result<ossl::X509Ptr> make_cert(const CertSpec& spec, EVP_PKEY* key, X509* issuer,
                                EVP_PKEY* issuer_key) {
  ossl::X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return failure("X509_new");
  std::unique_ptr<BIGNUM, ossl::BnFree> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return failure("serial");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1,
                                 0) != 1) {
    return failure("subject");
  }
  X509* signer = issuer ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1) {
    return failure("issuer");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kClockSkewS) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.valid_days, 0, nullptr) == nullptr) {
    return failure("validity");
  }
  if (X509_set_pubkey(cert.get(), key) != 1) return failure("X509_set_pubkey");
  CUSTOS_RETURN_IF_ERROR(add_ext(cert.get(), signer, NID_subject_key_identifier, "hash"));
  if (spec.ca) {
    CUSTOS_RETURN_IF_ERROR(add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE"));
    CUSTOS_RETURN_IF_ERROR(
        add_ext(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    CUSTOS_RETURN_IF_ERROR(add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE"));
    CUSTOS_RETURN_IF_ERROR(
        add_ext(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyAgreement"));
    CUSTOS_RETURN_IF_ERROR(
        add_ext(cert.get(), signer, NID_ext_key_usage, spec.server ? "serverAuth" : "clientAuth"));
    CUSTOS_RETURN_IF_ERROR(add_ext(cert.get(), signer, NID_authority_key_identifier, "keyid"));
  }
  if (spec.server) {
    std::string san;
    for (const std::string& h : spec.hosts) {
      if (!san.empty()) san += ",";
      const bool ip = !h.empty() && h.find_first_not_of("0123456789.:") == std::string::npos;
      san += (ip ? "IP:" : "DNS:") + h;
    }
    CUSTOS_RETURN_IF_ERROR(add_ext(cert.get(), signer, NID_subject_alt_name, san));
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) return failure("X509_sign");
  return cert;
}

Result<std::string> cert_pem(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return failure("PEM_write_bio_X509");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> key_pem(EVP_PKEY* key) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return failure("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// Writes PREFIX.key (0600) and PREFIX.crt for a new key and certificate.
Status write_pair(const std::string& prefix, const CertSpec& spec, X509* issuer,
                  EVP_PKEY* issuer_key, ossl::PkeyPtr* key_out = nullptr,
                  ossl::X509Ptr* cert_out = nullptr) {
  CUSTOS_ASSIGN_OR_RETURN(ossl::PkeyPtr key, new_ec_key());
  EVP_PKEY* signing = issuer_key ? issuer_key : key.get();
  CUSTOS_ASSIGN_OR_RETURN(ossl::X509Ptr cert, make_cert(spec, key.get(), issuer, signing));
  CUSTOS_ASSIGN_OR_RETURN(std::string kp, key_pem(key.get()));
  CUSTOS_ASSIGN_OR_RETURN(std::string cp, cert_pem(cert.get()));
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(prefix + ".key", kp, 0600));
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(prefix + ".crt", cp, 0644));
  if (key_out) *key_out = std::move(key);
  if (cert_out) *cert_out = std::move(cert);
  return Status();
}

Result<ossl::X509Ptr> read_cert(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes pem, read_file(path));
  ossl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return error(ErrorCode::kMalformed, path + ": not a PEM certificate");
  return cert;
}

Result<ossl::PkeyPtr> read_key(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes pem, read_file(path));
  ossl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ossl::PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return error(ErrorCode::kMalformed, path + ": not a PEM private key");
  return key;
}

std::string current_user() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw && pw->pw_name ? pw->pw_name : "mosquitto";
}

}  // namespace

std::string mosquitto_acl() {
  std::string acl =
      "# custos device gateway ACLs (docs/gateway.md). A client's user name is the\n"
      "# CN of its certificate (use_identity_as_username).\n"
      "\n"
      "# The gateway reads every device message and answers on ack/error topics.\n";
  acl += std::string("user ") + kGatewayIdentity + "\n";
  acl +=
      "topic read iomt/v1/+/+/+/+/event\n"
      "topic read iomt/v1/+/+/+/+/alarm\n"
      "topic read iomt/v1/+/+/+/+/status\n"
      "topic write iomt/v1/+/+/+/+/ack\n"
      "topic write iomt/v1/+/+/+/+/error\n"
      "\n"
      "# Every other client is a device whose id is its user name: it publishes\n"
      "# only under its own id and reads only its own answers.\n"
      "pattern write iomt/v1/+/+/+/%u/event\n"
      "pattern write iomt/v1/+/+/+/%u/alarm\n"
      "pattern write iomt/v1/+/+/+/%u/status\n"
      "pattern read iomt/v1/+/+/+/%u/ack\n"
      "pattern read iomt/v1/+/+/+/%u/error\n";
  return acl;
}

std::string mosquitto_conf(const std::string& dir, const std::string& host, int port) {
  const std::string d = std::filesystem::absolute(dir).lexically_normal().string();
  std::string c =
      "# Written by `custos broker init` (docs/gateway.md). Run with\n"
      "#   custos broker run --dir " +
      d +
      "\n"
      "# or mosquitto -c " +
      d +
      "/mosquitto.conf\n"
      "# mosquitto started as root drops to this user: the one who owns DIR.\n"
      "user " +
      current_user() +
      "\n"
      "per_listener_settings false\n"
      "allow_anonymous false\n"
      "acl_file " +
      d +
      "/acl\n"
      "\n"
      "listener " +
      std::to_string(port) + " " + host +
      "\n"
      "protocol mqtt\n"
      "cafile " +
      d +
      "/ca.crt\n"
      "certfile " +
      d +
      "/server.crt\n"
      "keyfile " +
      d +
      "/server.key\n"
      "tls_version tlsv1.2\n"
      "require_certificate true\n"
      "use_identity_as_username true\n"
      "\n"
      "# Sessions and queued messages survive a broker restart.\n"
      "persistence true\n"
      "persistence_location " +
      d +
      "/data/\n"
      "autosave_interval " +
      std::to_string(kBrokerAutosaveIntervalS) +
      "\n"
      "# What the broker holds for a disconnected gateway (its outage budget).\n"
      "max_queued_messages " +
      std::to_string(kBrokerQueuedMessagesMax) +
      "\n"
      "max_queued_bytes 0\n"
      "max_inflight_messages " +
      std::to_string(limits::kReceiveMaximum) +
      "\n"
      "# Statements are at most 64 KiB; up to twice that reaches the gateway so it\n"
      "# can tell the device why, anything bigger the broker drops.\n"
      "max_packet_size " +
      std::to_string(limits::kBrokerPacketBytesMax) +
      "\n"
      "persistent_client_expiration 14d\n"
      "\n"
      "log_dest file " +
      d +
      "/mosquitto.log\n"
      "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
      "connection_messages true\n"
      "log_timestamp_format %Y-%m-%dT%H:%M:%S\n";
  return c;
}

Status broker_init(const BrokerInitOptions& o) {
  if (o.dir.empty()) return error(ErrorCode::kInvalidArgument, "--dir is required");
  if (o.port <= 0 || o.port > 65535) return error(ErrorCode::kInvalidArgument, "bad --port");
  if (file_exists(o.dir + "/ca.key")) {
    return error(ErrorCode::kConflict, o.dir + " already holds a broker CA (ca.key)");
  }
  std::error_code ec;
  std::filesystem::create_directories(o.dir + "/data", ec);
  if (ec) return error(ErrorCode::kIo, "cannot create " + o.dir + ": " + ec.message());
  ::chmod(o.dir.c_str(), 0700);
  ossl::PkeyPtr ca_key;
  ossl::X509Ptr ca_cert;
  CUSTOS_RETURN_IF_ERROR(write_pair(o.dir + "/ca", {"custos broker CA", kCaValidDays, true, false},
                                    nullptr, nullptr, &ca_key, &ca_cert));
  std::vector<std::string> hosts = o.hosts;
  for (const char* h : {"localhost", "127.0.0.1"}) {
    if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  }
  if (o.listen_host != "0.0.0.0" &&
      std::find(hosts.begin(), hosts.end(), o.listen_host) == hosts.end()) {
    hosts.push_back(o.listen_host);
  }
  CUSTOS_RETURN_IF_ERROR(write_pair(o.dir + "/server",
                                    {hosts.front(), kCertValidDays, false, true, hosts},
                                    ca_cert.get(), ca_key.get()));
  CUSTOS_RETURN_IF_ERROR(write_pair(o.dir + "/gateway", {kGatewayIdentity, kCertValidDays},
                                    ca_cert.get(), ca_key.get()));
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(o.dir + "/acl", mosquitto_acl(), 0644));
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(o.dir + "/mosquitto.conf",
                                           mosquitto_conf(o.dir, o.listen_host, o.port), 0644));
  const std::string connect_host = o.listen_host == "0.0.0.0" ? "127.0.0.1" : o.listen_host;
  nlohmann::json info = {{"host", connect_host}, {"port", o.port}};
  return write_file_atomic(o.dir + "/broker.json", info.dump(2) + "\n", 0644);
}

Status broker_issue(const std::string& dir, const std::string& device_id,
                    const std::string& out_prefix) {
  if (!valid_topic_segment(device_id)) {
    return error(ErrorCode::kInvalidArgument,
                 "device id '" + device_id + "' must be 1-64 of [A-Za-z0-9._:-] (a topic segment)");
  }
  if (device_id == kGatewayIdentity) {
    return error(ErrorCode::kInvalidArgument, "that id is the gateway's");
  }
  CUSTOS_ASSIGN_OR_RETURN(ossl::X509Ptr ca_cert, read_cert(dir + "/ca.crt"));
  CUSTOS_ASSIGN_OR_RETURN(ossl::PkeyPtr ca_key, read_key(dir + "/ca.key"));
  return write_pair(out_prefix, {device_id, kCertValidDays}, ca_cert.get(), ca_key.get());
}

Result<BrokerEndpoint> read_broker_json(const std::string& dir) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes text, read_file(dir + "/broker.json"));
  auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (!doc.is_object() || !doc["host"].is_string() || !doc["port"].is_number_integer()) {
    return error(ErrorCode::kMalformed, dir + "/broker.json: want {\"host\", \"port\"}");
  }
  return BrokerEndpoint{doc["host"].get<std::string>(), doc["port"].get<int>()};
}

}  // namespace custos::gateway
