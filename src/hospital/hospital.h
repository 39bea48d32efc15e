// A simulated hospital: wards, beds, infusion pumps and patient monitors,
// and the people who order, verify and program infusions. A pure model: it
// decides what happens when (from a seed and the time it is given) and says
// so as actions; `custos simulate` signs them, sends clinicians' statements
// to a node and has each device publish its own over MQTT.
//
// What a bed does, over and over: idle -> a prescriber orders an infusion ->
// the pharmacy verifies it -> a nurse programs the pump -> the pump records
// the programming, starts, reports its status, sometimes changes rate,
// raises alarms or limit alerts -> completes -> idle. Monitors report their
// status. Faults (docs/gateway.md, "Hospital simulator") are injected on
// request.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "codec/cbor.h"

namespace custos::hospital {

// Faults a scenario can switch on (each at most once per run unless noted;
// docs/gateway.md, "Hospital simulator", says what each must come to).
enum Fault : uint32_t {
  kFaultReplay = 1u << 0,             // a device's earlier message sent again, byte for byte
  kFaultTamper = 1u << 1,             // a signed message with one payload byte flipped
  kFaultClonedKey = 1u << 2,          // a second device publishing with a pump's key
  kFaultRogueFirmware = 1u << 3,      // the last pump installs firmware its maker never released
  kFaultClockSkew = 1u << 4,          // the last monitor's clock runs ahead (from the start)
  kFaultSoftLimitOverride = 1u << 5,  // a nurse overrides a soft limit (every infusion of bed 1)
  kFaultWardOutage = 1u << 6,         // the last ward's devices lose the network for a while
};
const char* fault_name(Fault f);
// "replay,tamper" -> bits; an unknown name is named in the error.
std::optional<uint32_t> faults_from_names(const std::string& csv, std::string* unknown);
std::vector<std::string> all_fault_names();

struct Config {
  std::string hospital = "sim-hospital";  // organisation ids
  std::string maker = "sim-maker";
  std::string site = "site-1";
  std::vector<std::string> wards = {"icu", "med-surg", "oncology"};
  uint32_t beds_per_ward = 4;
  uint64_t status_interval_ms = 5000;  // each device's status report
  // A bed's idle time between infusions, and an infusion's duration (the
  // simulation runs faster than a ward: minutes, not hours).
  uint64_t idle_ms_min = 10000, idle_ms_max = 40000;
  uint64_t infusion_ms_min = 30000, infusion_ms_max = 90000;
  uint64_t clinician_step_ms_min = 2000, clinician_step_ms_max = 6000;
  double rate_change_probability = 0.3;  // per infusion
  double alarm_probability = 0.2;
  double soft_limit_probability = 0.1;
  uint32_t faults = 0;
  uint64_t fault_at_ms = 20000;  // when injected faults happen, after the start
  uint64_t ward_outage_ms = 15000;
  int64_t clock_skew_s = 600;  // twice the ledger's tolerance (5 minutes)
  uint64_t seed = 1;
  // Distinguishes this run's order ids from earlier runs' on the same
  // ledger (an order id is unique across the consortium).
  std::string run = "run1";
  std::string drug_library = "DL-2026-11";
  std::string firmware = "3.2.0";  // what the pumps run (see the advisory in setup)
  std::string rogue_firmware = "3.2.0-patched";
};

// The same hospital `speed` times faster: idle times, infusions and
// clinicians' steps divided by it (at least 1 ms each); device status
// reports, fault times and the outage keep their length. speed <= 0 or
// not finite leaves the config as it is.
Config at_speed(Config c, double speed);

enum class DeviceClass { kPump, kMonitor };

struct DeviceInfo {
  std::string id;  // "sim-icu-b1-pump"
  DeviceClass device_class = DeviceClass::kPump;
  size_t ward = 0;
  size_t bed = 0;
  std::string model;       // "AP-500" or "PM-20"
  std::string class_name;  // "infusion-pump" or "patient-monitor"
  std::string care_area;   // the ward
  std::string location;    // "icu bed 1"
};

enum class Clinician { kPrescriber, kPharmacist, kNurse };
const char* clinician_name(Clinician c);

struct Action {
  enum class Kind {
    kClinician,    // a person's statement, to a node over HTTP
    kDevice,       // a device's event, published over MQTT by the device
    kReplay,       // publish one of this device's earlier messages again
    kTamper,       // sign, then flip a byte, then publish
    kClone,        // publish with this device's key from a second client
    kNetworkDown,  // this device loses the network (queues)
    kNetworkUp,
  };
  Kind kind = Kind::kDevice;
  uint64_t at_ms = 0;
  size_t device = 0;  // index into devices()
  Clinician clinician = Clinician::kNurse;
  size_t ward = 0;  // the clinician's ward (nurses)
  std::string content_type;
  cbor::Value payload;
  std::string subject;
  std::string order;  // the order a clinician's step belongs to
  std::string step;   // "order", "verification", "programming"
  // The fault this action is part of (0: none): the replay, tamper and clone
  // actions, the rogue firmware installation, the network going down and
  // up, and the soft-limit bed's programming, alert and override.
  uint32_t fault = 0;
};

class Hospital {
  // One bed's infusion, step by step.
  struct Bed {
    enum class Phase { kIdle, kAwaitOrder, kAwaitVerification, kAwaitProgramming, kRunning };
    size_t ward = 0, bed = 0;
    size_t pump = 0, monitor = 0;  // device indexes
    std::string pseudonym;
    Phase phase = Phase::kIdle;
    uint64_t next_ms = 0;  // when the next step happens (0: waiting for registration)
    std::string order;
    std::string drug, dose_unit;
    double dose = 0, rate_ml_h = 0, vtbi_ml = 0;
    std::string order_entry, verification_entry;
    uint64_t end_ms = 0, rate_change_ms = 0, alarm_ms = 0;
    bool soft_limit = false, alarm_cleared = false;
    bool soft_limit_fault = false;  // the soft-limit-override fault's bed
    std::string alarm;
  };

 public:
  explicit Hospital(Config config);

  const Config& config() const { return config_; }
  const std::vector<DeviceInfo>& devices() const { return devices_; }
  const std::string& pseudonym_of_bed(size_t ward, size_t bed) const;

  // Everything that happens up to now_ms, in time order. Clinician steps
  // that refer to an earlier step (`prev`) wait until registered() has
  // told the model that step's entry id.
  std::vector<Action> advance(uint64_t now_ms);
  // A clinician's statement was registered (or refused: id nullopt, and the
  // bed's infusion is abandoned).
  void registered(const std::string& order, const std::string& step,
                  std::optional<std::string> entry_id_hex);

  uint64_t orders_started() const { return orders_started_; }

  // Where the faults strike (nullopt when that fault is off): the monitor
  // whose clock runs clock_skew_s ahead from the start, the pump that
  // installs rogue firmware, the bed whose infusions exceed a soft limit
  // (a bed index: ward * beds_per_ward + bed), the ward that loses its network.
  std::optional<size_t> skewed_device() const;
  std::optional<size_t> rogue_firmware_device() const;
  std::optional<size_t> soft_limit_bed() const;
  std::optional<size_t> outage_ward() const;

 private:
  void schedule_bed(Bed& bed, uint64_t now_ms, std::vector<Action>& out);
  void device_status(size_t device, uint64_t now_ms, std::vector<Action>& out);
  void infusion_events(Bed& bed, uint64_t now_ms, std::vector<Action>& out);
  void inject_faults(uint64_t now_ms, std::vector<Action>& out);
  uint64_t between(uint64_t lo, uint64_t hi);
  bool chance(double p);
  cbor::Value pump_event(const Bed& bed, const char* kind) const;

  Config config_;
  std::mt19937_64 rng_;
  std::vector<DeviceInfo> devices_;
  std::vector<Bed> beds_;
  std::vector<uint64_t> next_status_ms_;
  uint64_t start_ms_ = 0;
  uint64_t now_ms_ = 0;
  uint32_t faults_done_ = 0;
  uint64_t orders_started_ = 0;
  uint64_t order_counter_ = 0;
};

}  // namespace custos::hospital
