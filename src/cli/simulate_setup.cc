// Provisioning for `custos simulate`: the hospital's world on the ledger,
// registered once and found again on later runs (every step tolerates
// "already there").
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/signing.h"
#include "cli/simulate.h"
#include "codec/cbor.h"
#include "core/file.h"
#include "crypto/hash.h"
#include "domain/model.h"
#include "gateway/broker_config.h"
#include "ledger/policy.h"

namespace custos::cli {

namespace {

namespace fs = std::filesystem;
using cbor::Value;

constexpr const char* kRegulator = "sim-regulator";
constexpr const char* kAdvisedFirmware = "3.1.0";
constexpr const char* kAdvisoryId = "SIM-ADV-2026-1";

Value text(std::string_view s) {
  return cbor::text(s);
}

Value map(std::initializer_list<std::pair<const char*, Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return Value::map(std::move(m));
}

Value texts(const std::vector<std::string>& items) {
  cbor::Array a;
  for (const auto& i : items) a.push_back(cbor::text(i));
  return Value::array(std::move(a));
}

Hash256 digest_of(std::string_view what) {
  return crypto::sha256(as_view(what));
}

class Provisioner {
 public:
  Provisioner(const SimulateOptions& o, const hospital::Hospital& h)
      : o_(o), h_(h), client_(o.nodes.front()) {}

  Result<SimWorld> run() {
    std::error_code ec;
    fs::create_directories(o_.dir + "/people", ec);
    fs::create_directories(o_.dir + "/devices", ec);
    if (ec) return error(ErrorCode::kIo, "cannot create " + o_.dir + ": " + ec.message());
    const auto& c = h_.config();
    CUSTOS_RETURN_IF_ERROR(org(c.maker, "Simulated device maker", "maker"));
    CUSTOS_RETURN_IF_ERROR(org(c.hospital, "Simulated hospital", "hospital"));
    CUSTOS_RETURN_IF_ERROR(org(kRegulator, "Simulated regulator", "regulator"));
    CUSTOS_ASSIGN_OR_RETURN(std::string maker_eng,
                            person("maker-eng", c.maker, ledger::kRoleBiomed));
    CUSTOS_ASSIGN_OR_RETURN(std::string analyst,
                            person("analyst", kRegulator, ledger::kRoleAuditor));
    CUSTOS_ASSIGN_OR_RETURN(std::string biomed, person("biomed", c.hospital, ledger::kRoleBiomed));
    CUSTOS_ASSIGN_OR_RETURN(world_.people["pharmacist"],
                            person("pharmacist", c.hospital, ledger::kRolePharmacist));
    CUSTOS_ASSIGN_OR_RETURN(world_.people["prescriber"],
                            person("prescriber", c.hospital, ledger::kRolePrescriber));
    for (const auto& ward : c.wards) {
      CUSTOS_ASSIGN_OR_RETURN(world_.people["nurse@" + ward],
                              person("nurse-" + ward, c.hospital, ledger::kRoleNurse));
    }
    for (const std::string& version : {std::string(kAdvisedFirmware), c.firmware}) {
      CUSTOS_RETURN_IF_ERROR(release(maker_eng, version));
    }
    CUSTOS_RETURN_IF_ERROR(advisory(analyst));
    CUSTOS_RETURN_IF_ERROR(drug_library(world_.people["pharmacist"]));
    std::fprintf(stderr, "  devices: ");
    for (size_t i = 0; i < h_.devices().size(); ++i) {
      CUSTOS_RETURN_IF_ERROR(device(i, maker_eng, biomed));
      std::fputc('.', stderr);
    }
    std::fputc('\n', stderr);
    const std::string clone = o_.dir + "/devices/sim-clone-1-tls";
    if (!file_exists(clone + ".crt"))
      CUSTOS_RETURN_IF_ERROR(gateway::broker_issue(o_.broker_dir, "sim-clone-1", clone));
    world_.clone_tls_cert = clone + ".crt";
    world_.clone_tls_key = clone + ".key";
    world_.advised_firmware = kAdvisedFirmware;
    world_.advisory_id = kAdvisoryId;
    return world_;
  }

 private:
  // POSTs a statement; a conflict (already registered) is fine when the
  // world is being found again.
  Status submit(const Bytes& statement, bool conflict_ok) {
    CUSTOS_ASSIGN_OR_RETURN(
        HttpReply reply,
        client_.post("/v1/entries", std::string(statement.begin(), statement.end()),
                     "application/cose"));
    if (reply.ok() || (conflict_ok && reply.status == 409)) return Status();
    return reply_error(reply);
  }

  Status signed_submit(const std::string& key, std::string_view type, const std::string& subject,
                       const Value& payload, bool conflict_ok = true) {
    CUSTOS_ASSIGN_OR_RETURN(Bytes st, sign_admin_statement(client_, key, std::string(type), subject,
                                                           cbor::encode(payload)));
    return submit(st, conflict_ok);
  }

  Status org(const std::string& id, const std::string& name, const char* kind) {
    return signed_submit(o_.admin_key, domain::kTypeOrgRegister, "org/" + id,
                         map({{"id", text(id)}, {"name", text(name)}, {"kind", text(kind)}}));
  }

  // A person's key (ES256), registered by the consortium administrator.
  Result<std::string> person(const std::string& name, const std::string& org, uint32_t roles) {
    const std::string path = o_.dir + "/people/" + name + ".key";
    if (!file_exists(path)) {
      CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey k,
                              crypto::PrivateKey::generate(crypto::Algorithm::kES256));
      CUSTOS_RETURN_IF_ERROR(write_file_atomic(path, k.to_pem(), 0600));
    }
    CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey key, load_private_key(path));
    if (fetch_key_info(client_, key.public_key().kid()).ok()) return path;
    ledger::KeyRegistration reg{key.public_key().spki_der(), roles, "sim-" + name, org};
    CUSTOS_RETURN_IF_ERROR(signed_submit(o_.admin_key, ledger::kTypeKeyRegister, "keys/sim-" + name,
                                         ledger::key_registration_payload(reg), false));
    return path;
  }

  Status release(const std::string& eng, const std::string& version) {
    return signed_submit(
        eng, domain::kTypeFirmwareRelease, "firmware/" + version,
        map({{"version", text(version)},
             {"image_sha256", Value::bytes(ByteView(digest_of("image " + version)))},
             {"sbom_sha256", Value::bytes(ByteView(digest_of("sbom " + version)))},
             {"models", texts({"AP-500", "PM-20"})}}));
  }

  Status advisory(const std::string& analyst) {
    const auto& c = h_.config();
    return signed_submit(
        analyst, domain::kTypeAdvisory, std::string("advisory/") + kAdvisoryId,
        map({{"id", text(kAdvisoryId)},
             {"maker", text(c.maker)},
             {"models", texts({"AP-500"})},
             {"versions", texts({kAdvisedFirmware})},
             {"cves", texts({"CVE-2026-40001"})},
             {"severity", text("high")},
             {"fixed_in", text(c.firmware)},
             {"summary", text("free-flow risk after an occlusion alarm is cleared")}}));
  }

  Status drug_library(const std::string& pharmacist) {
    const auto& c = h_.config();
    return signed_submit(pharmacist, domain::kTypeDrugLibrary, "drug-library/" + c.drug_library,
                         map({{"version", text(c.drug_library)},
                              {"sha256", Value::bytes(ByteView(digest_of(c.drug_library)))}}));
  }

  // One device: its key, registration by the maker (with the firmware it
  // left the factory with), custody to the hospital, installation at its
  // bed, and its TLS certificate. A marker file says it is all done.
  Status device(size_t i, const std::string& maker_eng, const std::string& biomed) {
    const hospital::DeviceInfo& d = h_.devices()[i];
    const auto& c = h_.config();
    const std::string dir = o_.dir + "/devices/" + d.id;
    SimWorld::Device paths{dir + "/device.key", dir + "/tls.crt", dir + "/tls.key", dir + "/state"};
    world_.devices.push_back(paths);
    if (file_exists(dir + "/provisioned")) return Status();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!file_exists(paths.key)) {
      CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey k,
                              crypto::PrivateKey::generate(crypto::Algorithm::kES256));
      CUSTOS_RETURN_IF_ERROR(write_file_atomic(paths.key, k.to_pem(), 0600));
    }
    CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey key, load_private_key(paths.key));
    // The first ward's pumps still run the release named in the advisory.
    const bool advised = d.device_class == hospital::DeviceClass::kPump && d.ward == 0;
    const std::string firmware = advised ? kAdvisedFirmware : c.firmware;
    char serial[24];
    std::snprintf(serial, sizeof serial, "SIM%06zu", i + 1);
    CUSTOS_RETURN_IF_ERROR(signed_submit(
        maker_eng, domain::kTypeDeviceRegister, "device/" + d.id,
        map({{"device", text(d.id)},
             {"class", text(d.class_name)},
             {"model", text(d.model)},
             {"udi",
              map({{"di", text(d.device_class == hospital::DeviceClass::kPump ? "00614141999996"
                                                                              : "09506000134352")},
                   {"serial", text(serial)},
                   {"manufactured", text("2025-06-01")}})},
             {"key", Value::bytes(ByteView(key.public_key().spki_der()))},
             {"firmware",
              map({{"version", text(firmware)},
                   {"image_sha256", Value::bytes(ByteView(digest_of("image " + firmware)))}})}})));
    CUSTOS_RETURN_IF_ERROR(signed_submit(maker_eng, domain::kTypeDeviceCustody, "device/" + d.id,
                                         map({{"device", text(d.id)}, {"to", text(c.hospital)}})));
    CUSTOS_RETURN_IF_ERROR(signed_submit(biomed, domain::kTypeDeviceInstall, "device/" + d.id,
                                         map({{"device", text(d.id)},
                                              {"care_area", text(d.care_area)},
                                              {"location", text(d.location)}})));
    if (!file_exists(paths.tls_cert))
      CUSTOS_RETURN_IF_ERROR(gateway::broker_issue(o_.broker_dir, d.id, dir + "/tls"));
    return write_file_atomic(dir + "/provisioned", "ok\n");
  }

  const SimulateOptions& o_;
  const hospital::Hospital& h_;
  NodeClient client_;
  SimWorld world_;
};

}  // namespace

Result<SimWorld> provision(const SimulateOptions& o, const hospital::Hospital& h) {
  return Provisioner(o, h).run();
}

std::string person_key(const SimWorld& w, hospital::Clinician c, const std::string& ward) {
  switch (c) {
    case hospital::Clinician::kPrescriber:
      return w.people.at("prescriber");
    case hospital::Clinician::kPharmacist:
      return w.people.at("pharmacist");
    case hospital::Clinician::kNurse:
      break;
  }
  return w.people.at("nurse@" + ward);
}

}  // namespace custos::cli
