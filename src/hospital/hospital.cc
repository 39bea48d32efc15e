#include "hospital/hospital.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "domain/model.h"
#include "domain/payload.h"

namespace custos::hospital {

namespace {

cbor::Value text(std::string_view s) {
  return cbor::text(s);
}
cbor::Value number(double v) {
  return cbor::Value::float64(v);
}

struct FieldList {
  cbor::Map m;
  FieldList& add(const char* k, cbor::Value v) {
    m.emplace_back(cbor::text(k), std::move(v));
    return *this;
  }
  cbor::Value build() { return cbor::Value::map(std::move(m)); }
};

cbor::Value quantity(double value, std::string_view unit) {
  return FieldList().add("value", number(value)).add("unit", text(unit)).build();
}

constexpr std::pair<Fault, const char*> kFaultNames[] = {
    {kFaultReplay, "replay"},          {kFaultTamper, "tamper"},
    {kFaultClonedKey, "cloned-key"},   {kFaultRogueFirmware, "rogue-firmware"},
    {kFaultClockSkew, "clock-skew"},   {kFaultSoftLimitOverride, "soft-limit-override"},
    {kFaultWardOutage, "ward-outage"},
};

// What the wards infuse: drug, dose unit, typical dose, rate (mL/h), volume (mL).
struct Drug {
  const char* name;
  const char* dose_unit;
  double dose, rate_ml_h, vtbi_ml;
};
constexpr Drug kDrugs[] = {
    {"heparin", "[iU]/h", 1000, 20, 250},     {"morphine", "mg/h", 2, 2, 50},
    {"vancomycin", "mg", 1000, 125, 250},     {"insulin", "[iU]/h", 4, 4, 50},
    {"norepinephrine", "ug/min", 8, 15, 250}, {"sodium chloride 0.9%", "mL/h", 100, 100, 1000},
};
// A soft limit the pump's drug library sets on the rate, and how far above
// it an overridden programming goes.
constexpr double kSoftLimitFactor = 1.5;

}  // namespace

const char* fault_name(Fault f) {
  for (const auto& [bit, name] : kFaultNames) {
    if (bit == f) return name;
  }
  return "?";
}

std::vector<std::string> all_fault_names() {
  std::vector<std::string> out;
  for (const auto& [bit, name] : kFaultNames) out.emplace_back(name);
  return out;
}

std::optional<uint32_t> faults_from_names(const std::string& csv, std::string* unknown) {
  uint32_t bits = 0;
  size_t i = 0;
  while (i <= csv.size()) {
    size_t j = csv.find(',', i);
    if (j == std::string::npos) j = csv.size();
    const std::string name = csv.substr(i, j - i);
    if (!name.empty()) {
      uint32_t bit = 0;
      for (const auto& [b, n] : kFaultNames) {
        if (name == n) bit = b;
      }
      if (name == "all") bit = (1u << std::size(kFaultNames)) - 1;
      if (bit == 0) {
        if (unknown) *unknown = name;
        return std::nullopt;
      }
      bits |= bit;
    }
    i = j + 1;
  }
  return bits;
}

Config at_speed(Config c, double speed) {
  if (!std::isfinite(speed) || speed <= 0) return c;
  const auto scale = [speed](uint64_t& ms) {
    ms =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(static_cast<double>(ms) / speed)));
  };
  for (uint64_t* ms : {&c.idle_ms_min, &c.idle_ms_max, &c.infusion_ms_min, &c.infusion_ms_max,
                       &c.clinician_step_ms_min, &c.clinician_step_ms_max})
    scale(*ms);
  return c;
}

const char* clinician_name(Clinician c) {
  switch (c) {
    case Clinician::kPrescriber:
      return "prescriber";
    case Clinician::kPharmacist:
      return "pharmacist";
    case Clinician::kNurse:
      return "nurse";
  }
  return "?";
}

Hospital::Hospital(Config config) : config_(std::move(config)), rng_(config_.seed) {
  for (size_t w = 0; w < config_.wards.size(); ++w) {
    for (size_t b = 0; b < config_.beds_per_ward; ++b) {
      Bed bed;
      bed.ward = w;
      bed.bed = b;
      const std::string where = config_.wards[w] + "-b" + std::to_string(b + 1);
      const std::string location = config_.wards[w] + " bed " + std::to_string(b + 1);
      bed.pump = devices_.size();
      devices_.push_back({"sim-" + where + "-pump", DeviceClass::kPump, w, b, "AP-500",
                          "infusion-pump", config_.wards[w], location});
      bed.monitor = devices_.size();
      devices_.push_back({"sim-" + where + "-mon", DeviceClass::kMonitor, w, b, "PM-20",
                          "patient-monitor", config_.wards[w], location});
      // A pseudonym as a hospital would derive it (an HMAC of its record
      // number); here a number of the seed and the bed.
      char hex[33];
      std::snprintf(hex, sizeof hex, "%016llx%016llx",
                    static_cast<unsigned long long>(config_.seed * 0x9e3779b97f4a7c15ull),
                    static_cast<unsigned long long>(w * 1000 + b + 1));
      bed.pseudonym = std::string(domain::kPseudonymPrefix) + hex;
      beds_.push_back(std::move(bed));
    }
  }
  next_status_ms_.assign(devices_.size(), 0);
}

const std::string& Hospital::pseudonym_of_bed(size_t ward, size_t bed) const {
  return beds_.at(ward * config_.beds_per_ward + bed).pseudonym;
}

std::optional<size_t> Hospital::skewed_device() const {
  if (!(config_.faults & kFaultClockSkew) || beds_.empty()) return std::nullopt;
  return beds_.back().monitor;
}

std::optional<size_t> Hospital::rogue_firmware_device() const {
  if (!(config_.faults & kFaultRogueFirmware) || beds_.empty()) return std::nullopt;
  return beds_.back().pump;
}

std::optional<size_t> Hospital::soft_limit_bed() const {
  if (!(config_.faults & kFaultSoftLimitOverride) || beds_.empty()) return std::nullopt;
  return 0;
}

std::optional<size_t> Hospital::outage_ward() const {
  if (!(config_.faults & kFaultWardOutage) || config_.wards.empty()) return std::nullopt;
  return config_.wards.size() - 1;
}

uint64_t Hospital::between(uint64_t lo, uint64_t hi) {
  if (hi <= lo) return lo;
  return lo + rng_() % (hi - lo + 1);
}

bool Hospital::chance(double p) {
  return std::uniform_real_distribution<double>(0, 1)(rng_) < p;
}

std::vector<Action> Hospital::advance(uint64_t now_ms) {
  std::vector<Action> out;
  if (start_ms_ == 0) {
    start_ms_ = now_ms;
    // Spread the first status reports and orders over the first interval.
    for (size_t d = 0; d < devices_.size(); ++d)
      next_status_ms_[d] = now_ms + between(0, config_.status_interval_ms);
    for (Bed& bed : beds_) bed.next_ms = now_ms + between(0, config_.idle_ms_max);
  }
  now_ms_ = now_ms;
  for (Bed& bed : beds_) schedule_bed(bed, now_ms, out);
  for (size_t d = 0; d < devices_.size(); ++d) device_status(d, now_ms, out);
  inject_faults(now_ms, out);
  std::stable_sort(out.begin(), out.end(),
                   [](const Action& a, const Action& b) { return a.at_ms < b.at_ms; });
  return out;
}

void Hospital::registered(const std::string& order, const std::string& step,
                          std::optional<std::string> entry_id_hex) {
  for (Bed& bed : beds_) {
    if (bed.order != order) continue;
    if (!entry_id_hex) {  // refused: give the bed back
      bed.phase = Bed::Phase::kIdle;
      bed.next_ms = now_ms_ + between(config_.idle_ms_min, config_.idle_ms_max);
      return;
    }
    const uint64_t next =
        now_ms_ + between(config_.clinician_step_ms_min, config_.clinician_step_ms_max);
    if (step == "order" && bed.phase == Bed::Phase::kAwaitOrder) {
      bed.order_entry = *entry_id_hex;
      bed.phase = Bed::Phase::kAwaitVerification;
      bed.next_ms = next;
    } else if (step == "verification" && bed.phase == Bed::Phase::kAwaitVerification) {
      bed.verification_entry = *entry_id_hex;
      bed.phase = Bed::Phase::kAwaitProgramming;
      bed.next_ms = next;
    } else if (step == "programming" && bed.phase == Bed::Phase::kAwaitProgramming) {
      bed.phase = Bed::Phase::kRunning;
      bed.next_ms = now_ms_;  // the pump records its programming at once
    }
    return;
  }
}

cbor::Value Hospital::pump_event(const Bed& bed, const char* kind) const {
  return FieldList().add("event", text(kind)).add("order", text(bed.order)).build();
}

void Hospital::schedule_bed(Bed& bed, uint64_t now_ms, std::vector<Action>& out) {
  using Phase = Bed::Phase;
  if (bed.next_ms == 0 || bed.next_ms > now_ms) {
    if (bed.phase == Phase::kRunning) infusion_events(bed, now_ms, out);
    return;
  }
  const uint64_t at = bed.next_ms;
  Action a;
  a.kind = Action::Kind::kClinician;
  a.at_ms = at;
  a.ward = bed.ward;
  switch (bed.phase) {
    case Phase::kIdle: {
      const Drug& d = kDrugs[rng_() % std::size(kDrugs)];
      bed.order = config_.hospital + "-" + config_.run + "-" + std::to_string(++order_counter_);
      bed.drug = d.name;
      bed.dose_unit = d.dose_unit;
      bed.dose = d.dose;
      bed.rate_ml_h = d.rate_ml_h;
      bed.vtbi_ml = d.vtbi_ml;
      const size_t bed_index = bed.ward * config_.beds_per_ward + bed.bed;
      // Drawn whether or not the fault is on, so the fault changes no other
      // bed's run.
      const bool by_chance = chance(config_.soft_limit_probability);
      bed.soft_limit_fault = soft_limit_bed() == bed_index;
      bed.soft_limit = by_chance || bed.soft_limit_fault;
      a.clinician = Clinician::kPrescriber;
      a.content_type = domain::kTypeMedicationOrder;
      a.payload = FieldList()
                      .add("order", text(bed.order))
                      .add("patient", text(bed.pseudonym))
                      .add("drug", text(bed.drug))
                      .add("dose", quantity(bed.dose, bed.dose_unit))
                      .add("rate", quantity(bed.rate_ml_h, "mL/h"))
                      .add("vtbi_ml", number(bed.vtbi_ml))
                      .add("route", text("intravenous"))
                      .add("care_area", text(config_.wards[bed.ward]))
                      .build();
      a.step = "order";
      bed.phase = Phase::kAwaitOrder;
      ++orders_started_;
      break;
    }
    case Phase::kAwaitVerification:
      a.clinician = Clinician::kPharmacist;
      a.content_type = domain::kTypePharmacyVerification;
      a.payload = FieldList()
                      .add("order", text(bed.order))
                      .add("prev", text(bed.order_entry))
                      .add("outcome", text("verified"))
                      .build();
      a.step = "verification";
      break;
    case Phase::kAwaitProgramming: {
      a.clinician = Clinician::kNurse;
      a.content_type = domain::kTypePumpProgramming;
      // With a soft-limit scenario the nurse programs above the library's
      // soft limit and overrides the pump's alert.
      const double rate = bed.soft_limit ? bed.rate_ml_h * kSoftLimitFactor : bed.rate_ml_h;
      a.payload = FieldList()
                      .add("order", text(bed.order))
                      .add("prev", text(bed.verification_entry))
                      .add("device", text(devices_[bed.pump].id))
                      .add("drug_library", text(config_.drug_library))
                      .add("drug", text(bed.drug))
                      .add("dose", quantity(bed.dose, bed.dose_unit))
                      .add("rate", quantity(rate, "mL/h"))
                      .add("vtbi_ml", number(bed.vtbi_ml))
                      .build();
      a.step = "programming";
      if (bed.soft_limit_fault) a.fault = kFaultSoftLimitOverride;
      break;
    }
    case Phase::kRunning:
      infusion_events(bed, now_ms, out);
      return;
    case Phase::kAwaitOrder:
      return;
  }
  a.order = bed.order;
  a.subject = "order/" + bed.order;
  bed.next_ms = 0;  // wait for registered()
  out.push_back(std::move(a));
}

// The pump's side of a running infusion: programming and start at once,
// then rate changes, alarms and the completion at their planned times.
void Hospital::infusion_events(Bed& bed, uint64_t now_ms, std::vector<Action>& out) {
  const auto emit = [&](uint64_t at, cbor::Value payload, uint32_t fault = 0) {
    Action a;
    a.kind = Action::Kind::kDevice;
    a.at_ms = at;
    a.device = bed.pump;
    a.content_type = domain::kTypeDeviceEvent;
    a.payload = std::move(payload);
    a.subject = "order/" + bed.order;
    a.fault = fault;
    out.push_back(std::move(a));
  };
  if (bed.end_ms == 0) {  // just programmed
    const uint64_t at = bed.next_ms;
    const double rate = bed.soft_limit ? bed.rate_ml_h * kSoftLimitFactor : bed.rate_ml_h;
    const uint32_t fault = bed.soft_limit_fault ? uint32_t{kFaultSoftLimitOverride} : 0u;
    emit(at,
         FieldList()
             .add("event", text("programming"))
             .add("order", text(bed.order))
             .add("drug", text(bed.drug))
             .add("drug_library", text(config_.drug_library))
             .add("dose", quantity(bed.dose, bed.dose_unit))
             .add("rate_ml_h", number(rate))
             .add("vtbi_ml", number(bed.vtbi_ml))
             .build(),
         fault);
    if (bed.soft_limit) {
      for (const char* kind : {"soft-limit-alert", "soft-limit-override"}) {
        emit(at,
             FieldList()
                 .add("event", text(kind))
                 .add("order", text(bed.order))
                 .add("limit", FieldList()
                                   .add("kind", text("soft"))
                                   .add("bound", text("upper"))
                                   .add("value", number(bed.rate_ml_h * 1.2))
                                   .add("unit", text("mL/h"))
                                   .build())
                 .build(),
             fault);
      }
    }
    emit(at, FieldList()
                 .add("event", text("start"))
                 .add("order", text(bed.order))
                 .add("rate_ml_h", number(rate))
                 .build());
    const uint64_t duration = between(config_.infusion_ms_min, config_.infusion_ms_max);
    bed.end_ms = at + duration;
    bed.rate_change_ms = chance(config_.rate_change_probability) ? at + duration / 3 : 0;
    bed.alarm_ms = chance(config_.alarm_probability) ? at + duration / 2 : 0;
    bed.alarm = (rng_() % 2) ? "occlusion-downstream" : "air-in-line";
    bed.alarm_cleared = false;
    bed.next_ms = 0;
    return;
  }
  if (bed.rate_change_ms && bed.rate_change_ms <= now_ms) {
    bed.rate_ml_h *= 0.8;
    emit(bed.rate_change_ms, FieldList()
                                 .add("event", text("rate-change"))
                                 .add("order", text(bed.order))
                                 .add("rate_ml_h", number(bed.rate_ml_h))
                                 .build());
    bed.rate_change_ms = 0;
  }
  if (bed.alarm_ms && bed.alarm_ms <= now_ms) {
    const bool raise = !bed.alarm_cleared;
    emit(bed.alarm_ms, FieldList()
                           .add("event", text(raise ? "alarm" : "alarm-cleared"))
                           .add("order", text(bed.order))
                           .add("alarm", text(bed.alarm))
                           .add("priority", text("high"))
                           .build());
    if (raise) {
      bed.alarm_cleared = true;
      bed.alarm_ms += 5000;  // a nurse clears it five seconds later
    } else {
      bed.alarm_ms = 0;
    }
  }
  if (bed.end_ms <= now_ms) {
    emit(bed.end_ms, FieldList()
                         .add("event", text("completion"))
                         .add("order", text(bed.order))
                         .add("volume_infused_ml", number(bed.vtbi_ml))
                         .build());
    bed.phase = Bed::Phase::kIdle;
    bed.end_ms = 0;
    bed.next_ms = now_ms + between(config_.idle_ms_min, config_.idle_ms_max);
  }
}

void Hospital::device_status(size_t d, uint64_t now_ms, std::vector<Action>& out) {
  while (next_status_ms_[d] <= now_ms) {
    const DeviceInfo& info = devices_[d];
    const Bed& bed = beds_[info.ward * config_.beds_per_ward + info.bed];
    const bool infusing =
        info.device_class == DeviceClass::kPump && bed.phase == Bed::Phase::kRunning;
    Action a;
    a.kind = Action::Kind::kDevice;
    a.at_ms = next_status_ms_[d];
    a.device = d;
    a.content_type = domain::kTypeDeviceEvent;
    a.payload = FieldList()
                    .add("event", text("status"))
                    .add("state", text(infusing ? "infusing" : "idle"))
                    .add("battery_pct", number(static_cast<double>(60 + rng_() % 41)))
                    .build();
    a.subject = "device/" + info.id;
    out.push_back(std::move(a));
    next_status_ms_[d] += config_.status_interval_ms;
  }
}

void Hospital::inject_faults(uint64_t now_ms, std::vector<Action>& out) {
  if (now_ms < start_ms_ + config_.fault_at_ms) return;
  const uint32_t todo = config_.faults & ~faults_done_;
  if (todo == 0) return;
  const auto device_action = [&](Action::Kind kind, size_t device, Fault fault) {
    Action a;
    a.kind = kind;
    a.at_ms = now_ms;
    a.device = device;
    a.fault = fault;
    a.content_type = domain::kTypeDeviceEvent;
    a.payload = FieldList().add("event", text("status")).add("state", text("idle")).build();
    a.subject = "device/" + devices_[device].id;
    out.push_back(std::move(a));
  };
  const size_t first_pump = beds_.front().pump;
  const size_t last_pump = beds_.back().pump;
  if (todo & kFaultReplay) device_action(Action::Kind::kReplay, first_pump, kFaultReplay);
  if (todo & kFaultTamper) device_action(Action::Kind::kTamper, first_pump, kFaultTamper);
  if (todo & kFaultClonedKey) device_action(Action::Kind::kClone, last_pump, kFaultClonedKey);
  if (auto rogue = rogue_firmware_device(); rogue && (todo & kFaultRogueFirmware)) {
    Action a;
    a.kind = Action::Kind::kDevice;
    a.at_ms = now_ms;
    a.device = *rogue;
    a.fault = kFaultRogueFirmware;
    a.content_type = domain::kTypeFirmwareInstall;
    // An image its maker never released under this version.
    a.payload = FieldList()
                    .add("version", text(config_.rogue_firmware))
                    .add("image_sha256", cbor::Value::bytes(Bytes(32, 0xee)))
                    .build();
    a.subject = "device/" + devices_[*rogue].id;
    out.push_back(std::move(a));
  }
  if (auto ward = outage_ward(); ward && (todo & kFaultWardOutage)) {
    for (size_t d = 0; d < devices_.size(); ++d) {
      if (devices_[d].ward != *ward) continue;
      Action down;
      down.kind = Action::Kind::kNetworkDown;
      down.at_ms = now_ms;
      down.device = d;
      down.fault = kFaultWardOutage;
      out.push_back(down);
      Action up = down;
      up.kind = Action::Kind::kNetworkUp;
      up.at_ms = now_ms + config_.ward_outage_ms;
      out.push_back(up);
    }
  }
  // Clock skew and the soft-limit override are properties of a device and
  // a bed from the start (the driver reads config().faults).
  faults_done_ |= todo;
}

}  // namespace custos::hospital
