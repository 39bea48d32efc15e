// `custos simulate`: a hospital on the ledger (docs/gateway.md, "Hospital
// simulator"). Provisioning puts the hospital's organisations, people,
// firmware, drug library and devices on the ledger once (and issues each
// device's TLS certificate from the broker CA); the run then plays the
// hospital model (src/hospital) in real time: clinicians' statements go to a
// node over HTTP, every device publishes its own signed events over MQTT
// through the gateway with the C device SDK, and a live summary shows what
// the ledger made of them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cli/common.h"
#include "hospital/hospital.h"

namespace custos::cli {

struct SimulateOptions {
  std::vector<std::string> nodes{kDefaultNodeUrl};
  std::string admin_key;
  std::string broker_dir;
  std::string dir = "sim";  // keys, certificates, device state
  std::string wards = "icu,med-surg,oncology";
  uint32_t beds = 4;
  uint64_t status_interval_ms = 5000;
  uint64_t duration_s = 0;  // 0: until Ctrl-C
  std::string faults;       // "replay,tamper,..." or "all"
  uint64_t fault_at_s = 20;
  uint64_t outage_s = 15;  // the ward-outage fault's length
  double speed = 1;        // hospital::at_speed
  uint64_t seed = 1;
  double summary_interval_s = 2;
  bool json = false;      // one JSON summary line per interval instead of the panel
  bool no_clear = false;  // print panels one after another (not redrawn in place)
};

// Where provisioning left each piece (all under options.dir).
struct SimWorld {
  std::map<std::string, std::string> people;  // role@ward -> private key path
  struct Device {
    std::string key, tls_cert, tls_key, state_dir;
  };
  std::vector<Device> devices;                // parallel to Hospital::devices()
  std::string clone_tls_cert, clone_tls_key;  // a certificate for the cloned-key device
  std::string advised_firmware;  // the version the first ward's pumps run (under advisory)
  std::string advisory_id;
};

// Registers (once; idempotent across runs) the organisations, people,
// firmware releases, an advisory, the drug library and every device, and
// issues the TLS certificates. Prints progress to stderr.
Result<SimWorld> provision(const SimulateOptions& o, const hospital::Hospital& h);

// Key path of a clinician: prescriber and pharmacist are hospital-wide,
// nurses per ward.
std::string person_key(const SimWorld& w, hospital::Clinician c, const std::string& ward);

}  // namespace custos::cli
