#include "domain/incident.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "cose/statement.h"
#include "domain/payload.h"
#include "ledger/policy.h"

namespace custos::domain {

namespace {

using cbor::Type;
using cbor::Value;

// --- Reading payloads (already validated at registration; read leniently) ---

std::string text_field(const Value& m, std::string_view f) {
  const Value* v = m.find(f);
  return v && v->is(Type::kText) ? v->as_text() : std::string();
}

std::optional<double> number_field(const Value& m, std::string_view f) {
  const Value* v = m.find(f);
  if (!v) return std::nullopt;
  if (v->is(Type::kFloat)) return v->as_float();
  if (v->is(Type::kUnsigned)) return static_cast<double>(v->as_uint());
  return std::nullopt;
}

std::optional<Quantity> quantity_field(const Value& m, std::string_view f) {
  const Value* q = m.find(f);
  if (!q || !q->is(Type::kMap)) return std::nullopt;
  auto value = number_field(*q, "value");
  if (!value) return std::nullopt;
  return Quantity{*value, text_field(*q, "unit")};
}

std::optional<Hash256> digest_field(const Value& m, std::string_view f) {
  const Value* v = m.find(f);
  if (!v || !v->is(Type::kBytes) || v->as_bytes().size() != 32) return std::nullopt;
  Hash256 h;
  std::copy(v->as_bytes().begin(), v->as_bytes().end(), h.begin());
  return h;
}

Value payload_of(ByteView statement) {
  auto st = cose::parse_statement(statement);
  if (!st.ok()) return Value::null();
  auto v = cbor::decode(st->payload());
  return v.ok() ? std::move(v).value() : Value::null();
}

// --- Text ---

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string quantity_text(const Quantity& q) {
  return num(q.value) + " " + q.unit;
}

std::string utc_time(uint64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string step_ref(size_t number) {
  return "step " + std::to_string(number);
}

bool same_drug(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool differs(double expected, double got) {
  return std::fabs(got - expected) > std::fabs(expected) * kValueTolerance;
}

std::string flag_code_of(const std::string& flag) {
  return flag.substr(0, flag.find(':'));
}

std::string flag_detail_of(const std::string& flag) {
  const size_t colon = flag.find(": ");
  return colon == std::string::npos ? std::string() : flag.substr(colon + 2);
}

StepKind kind_of(std::string_view content_type) {
  if (content_type == kTypeMedicationOrder) return StepKind::kOrder;
  if (content_type == kTypePharmacyVerification) return StepKind::kVerification;
  if (content_type == kTypePumpProgramming) return StepKind::kProgramming;
  if (content_type == kTypeDeviceEvent) return StepKind::kDeviceEvent;
  return StepKind::kOther;
}

// --- Reading the ledger ---

class Reader {
 public:
  Reader(const ledger::Ledger& l, uint64_t log_size) : ledger_(l), log_size_(log_size) {}

  uint64_t log_size() const { return log_size_; }
  const ledger::Ledger& ledger() const { return ledger_; }

  // Entries with `ref` below `until` (and the report's log size), in log
  // order, at most `max`; *truncated says whether more exist.
  Status entries(const std::string& ref, size_t max, uint64_t until,
                 std::vector<ledger::EntryInfo>& out, bool* truncated) const {
    until = std::min(until, log_size_);
    ledger::Query q;
    q.ref = ref;
    while (true) {
      q.limit = std::min(max - out.size() + 1, limits::kQueryPageEntriesMax);
      CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, ledger_.query(q));
      for (auto& e : page.entries) {
        if (e.index >= until) return Status();
        if (out.size() == max) {
          *truncated = true;
          return Status();
        }
        out.push_back(std::move(e));
      }
      if (!page.next_cursor || *page.next_cursor >= until) return Status();
      q.cursor = *page.next_cursor;
    }
  }

  template <typename T>
  Result<std::optional<T>> record(const Bytes& key) const {
    auto bytes = ledger_.rule_record(key);
    if (!bytes.ok()) {
      if (bytes.status().code() == ErrorCode::kNotFound) return std::optional<T>();
      return bytes.status();
    }
    CUSTOS_ASSIGN_OR_RETURN(T value, T::decode(*bytes));
    return std::optional<T>(std::move(value));
  }

  Result<std::optional<Device>> device(const std::string& id) {
    if (auto it = devices_.find(id); it != devices_.end()) return it->second;
    CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, record<Device>(device_key(id)));
    devices_[id] = d;
    return d;
  }

  Result<StepSigner> signer(const Hash256& kid) {
    if (auto it = signers_.find(kid); it != signers_.end()) return it->second;
    StepSigner s;
    s.kid = kid;
    auto key = ledger_.key(kid);
    if (!key.ok() && key.status().code() != ErrorCode::kNotFound) return key.status();
    if (key.ok()) {
      s.name = key->name;
      s.roles = ledger::role_names(key->roles);
      s.org = key->org;
      if (key->roles & ledger::kRoleDevice) {
        auto id = ledger_.rule_record(device_kid_key(kid));
        if (id.ok()) s.device.assign(id->begin(), id->end());
      }
      if (key->revoked() && key->revoked_index < log_size_)
        CUSTOS_RETURN_IF_ERROR(describe_revocation(s, key->revoked_index));
    }
    signers_[kid] = s;
    return s;
  }

  // The firmware `device` ran at log index `index` (its latest install
  // before it), from the installs below `until`. nullopt when none is
  // recorded, or when the history was cut short before `index`.
  Result<std::optional<FirmwareAt>> firmware_at(const std::string& device, uint64_t index,
                                                uint64_t until) {
    auto it = firmware_.find(device);
    if (it == firmware_.end()) {
      if (firmware_.size() == kReportDevicesMax) return std::optional<FirmwareAt>();
      CUSTOS_ASSIGN_OR_RETURN(FirmwareHistory history, firmware_history(device, until));
      it = firmware_.emplace(device, std::move(history)).first;
    }
    const FirmwareHistory& h = it->second;
    // Beyond the examined installs another one may have happened: say
    // nothing rather than something possibly wrong.
    if (h.truncated && (h.installs.empty() || index > h.examined_until))
      return std::optional<FirmwareAt>();
    std::optional<FirmwareAt> at;
    for (const FirmwareAt& f : h.installs) {
      if (f.since_index >= index) break;
      at = f;
    }
    return at;
  }

 private:
  Status describe_revocation(StepSigner& s, uint64_t index) {
    CUSTOS_ASSIGN_OR_RETURN(ledger::EntryInfo e, ledger_.entry_at(index));
    const Value p = payload_of(e.statement);
    const std::string& type = e.header.content_type;
    const std::string reason = text_field(p, "reason");
    s.revoked_index = index;
    s.revoked_ms = e.registered_ms;
    if (type == ledger::kTypeKeyRevoke) {
      // Named as the registry knows the revoking key, not by its iss claim.
      auto by = ledger_.key(e.header.kid);
      const std::string who = by.ok() ? by->name : to_hex(e.header.kid).substr(0, 16);
      s.revoked_how = "revoked by " + who + (reason.empty() ? "" : ": " + reason);
    } else if (type == ledger::kTypeKeyRotate)
      s.revoked_how = "rotated to a successor key" + (reason.empty() ? "" : ": " + reason);
    else if (type == kTypeDeviceDecommission)
      s.revoked_how =
          "revoked when the device was decommissioned" + (reason.empty() ? "" : ": " + reason);
    else
      s.revoked_how = "revoked by entry " + std::to_string(index);
    return Status();
  }

  struct FirmwareHistory {
    std::vector<FirmwareAt> installs;
    bool truncated = false;
    uint64_t examined_until = 0;  // log index of the last install examined
  };

  Result<FirmwareHistory> firmware_history(const std::string& device, uint64_t until) {
    std::vector<ledger::EntryInfo> entries_found;
    FirmwareHistory h;
    CUSTOS_RETURN_IF_ERROR(entries(ref("device-firmware", device), kFirmwareHistoryMax, until,
                                   entries_found, &h.truncated));
    for (const auto& e : entries_found) {
      h.examined_until = e.index;
      const Value p = payload_of(e.statement);
      const Value* fw = &p;
      if (e.header.content_type == kTypeDeviceRegister)
        fw = p.find("firmware");
      else if (e.header.content_type != kTypeFirmwareInstall)
        continue;
      if (!fw) continue;
      FirmwareAt f;
      f.version = text_field(*fw, "version");
      f.image_sha256 = digest_field(*fw, "image_sha256").value_or(Hash256{});
      f.since_entry = e.id;
      f.since_index = e.index;
      f.since_ms = e.registered_ms;
      h.installs.push_back(std::move(f));
    }
    return h;
  }

  const ledger::Ledger& ledger_;
  uint64_t log_size_;
  std::map<std::string, std::optional<Device>> devices_;
  std::map<Hash256, StepSigner> signers_;
  std::map<std::string, FirmwareHistory> firmware_;
};

Result<Step> make_step(Reader& reader, ledger::EntryInfo e, uint64_t until,
                       const ReportOptions& options) {
  Step s;
  s.kind = kind_of(e.header.content_type);
  s.entry = e.id;
  s.index = e.index;
  s.registered_ms = e.registered_ms;
  s.issued_at_s = e.header.issued_at_s;
  s.sequence = e.header.sequence;
  s.gap = e.gap;
  s.flags = std::move(e.flags);
  s.payload = payload_of(e.statement);
  s.statement = std::move(e.statement);
  CUSTOS_ASSIGN_OR_RETURN(s.signer, reader.signer(e.header.kid));
  if (s.kind == StepKind::kVerification) s.event = text_field(s.payload, "outcome");
  if (s.kind == StepKind::kProgramming) s.device = text_field(s.payload, "device");
  if (s.kind == StepKind::kDeviceEvent) {
    s.event = text_field(s.payload, "event");
    s.device = s.signer.device;
  }
  s.drug_library = text_field(s.payload, "drug_library");
  if (!s.device.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(s.firmware, reader.firmware_at(s.device, s.index, until));
  }
  if (options.receipts) {
    auto receipt = reader.ledger().receipt(s.entry);
    const ErrorCode code = receipt.status().code();
    if (receipt.ok())
      s.receipt = std::move(receipt).value();
    else if (code == ErrorCode::kUnavailable || code == ErrorCode::kNotFound)
      s.receipt_error = receipt.status().message();  // not signed by a quorum yet
    else
      return receipt.status();  // storage failed: no report rather than a partial one
  }
  return s;
}

// --- Deviations ---

// The values a programming step (order, nurse, pump) states.
struct Values {
  std::string drug;
  std::optional<Quantity> dose;
  std::optional<double> rate_ml_h;
  std::optional<double> vtbi_ml;
  size_t step = 0;
  std::string source;  // "the order", "the nurse's programming"
};

Values order_values(const MedicationOrder& o, size_t step) {
  return Values{o.drug, o.dose, o.rate.value, o.vtbi_ml, step, "the order"};
}

Values nurse_values(const Step& s) {
  auto rate = quantity_field(s.payload, "rate");
  return Values{text_field(s.payload, "drug"),
                quantity_field(s.payload, "dose"),
                rate ? std::optional<double>(rate->value) : std::nullopt,
                number_field(s.payload, "vtbi_ml"),
                s.number,
                "the nurse's programming"};
}

Values pump_values(const Step& s) {
  return Values{text_field(s.payload, "drug"),
                quantity_field(s.payload, "dose"),
                number_field(s.payload, "rate_ml_h"),
                number_field(s.payload, "vtbi_ml"),
                s.number,
                "the pump"};
}

class Analyzer {
 public:
  Analyzer(Reader& reader, IncidentReport& report) : reader_(reader), r_(report) {}

  Status run() {
    if (!r_.order && !r_.steps.empty()) {
      add("missing-order", 1, signer_party(r_.steps[0]),
          "entries name order '" + r_.order_id + "' but no medication order is recorded");
    }
    for (const Step& s : r_.steps) {
      switch (s.kind) {
        case StepKind::kOrder:
          order_step_ = s.number;
          break;
        case StepKind::kVerification:
          on_verification(s);
          break;
        case StepKind::kProgramming:
          on_programming(s);
          break;
        case StepKind::kDeviceEvent:
          CUSTOS_RETURN_IF_ERROR(on_event(s));
          break;
        case StepKind::kOther:
          break;
      }
      CUSTOS_RETURN_IF_ERROR(on_flags(s));
      on_signer(s);
    }
    finish();
    CUSTOS_RETURN_IF_ERROR(advisories());
    std::stable_sort(r_.deviations.begin(), r_.deviations.end(),
                     [](const Deviation& a, const Deviation& b) { return a.step < b.step; });
    r_.status = status();
    return Status();
  }

 private:
  void add(std::string code, size_t step, Party party, std::string detail, std::string about = "",
           std::string timing = "") {
    r_.deviations.push_back(Deviation{std::move(code), step, std::move(party), std::move(detail),
                                      std::move(about), std::move(timing)});
  }

  static const char* role_of(StepKind kind) {
    switch (kind) {
      case StepKind::kOrder:
        return "prescriber";
      case StepKind::kVerification:
        return "pharmacist";
      case StepKind::kProgramming:
        return "nurse";
      case StepKind::kDeviceEvent:
        return "device";
      case StepKind::kOther:
        break;
    }
    return "signer";
  }

  Party signer_party(const Step& s) {
    if (s.kind == StepKind::kDeviceEvent && !s.device.empty()) {
      auto d = reader_.device(s.device);
      const std::string holder = d.ok() && *d ? (*d)->holder : s.signer.org;
      return Party{"device", s.device, holder};
    }
    return Party{role_of(s.kind), s.signer.name, s.signer.org};
  }

  // Who acted at the pump: the nurse of the latest programming, else the pump.
  Party operator_party(const Step& s) {
    if (nurse_) return signer_party(*nurse_);
    return signer_party(s);
  }

  std::string operator_note() const {
    if (!nurse_) return "";
    return "; the pump was programmed by nurse " + nurse_->signer.name + " at " +
           step_ref(nurse_->number);
  }

  Values expected() const {
    if (nurse_) return nurse_values(*nurse_);
    if (r_.order) return order_values(*r_.order, order_step_);
    return Values{};
  }

  void compare(const Step& s, const Values& want, const Values& got, const Party& party) {
    const std::string from =
        " (" + want.source + (want.step ? ", " + step_ref(want.step) : "") + ")";
    if (!want.drug.empty() && !got.drug.empty() && !same_drug(want.drug, got.drug)) {
      add("drug-mismatch", s.number, party,
          "drug '" + got.drug + "', expected '" + want.drug + "'" + from, "drug");
    }
    if (want.dose && got.dose) {
      if (want.dose->unit != got.dose->unit || differs(want.dose->value, got.dose->value)) {
        add("dose-mismatch", s.number, party,
            "dose " + quantity_text(*got.dose) + ", expected " + quantity_text(*want.dose) + from,
            "dose");
      }
    }
    if (want.rate_ml_h && got.rate_ml_h && differs(*want.rate_ml_h, *got.rate_ml_h)) {
      add("rate-mismatch", s.number, party,
          "rate " + num(*got.rate_ml_h) + " mL/h, expected " + num(*want.rate_ml_h) + " mL/h" +
              from,
          "rate");
    }
    if (want.vtbi_ml && got.vtbi_ml && differs(*want.vtbi_ml, *got.vtbi_ml)) {
      add("vtbi-mismatch", s.number, party,
          "volume to be infused " + num(*got.vtbi_ml) + " mL, expected " + num(*want.vtbi_ml) +
              " mL" + from,
          "vtbi");
    }
  }

  // A step that goes ahead with the infusion (programming, start): it needs
  // a verification that did not reject the order.
  void check_verified(const Step& s) {
    if (!verification_ && !missing_verification_reported_) {
      missing_verification_reported_ = true;
      add("missing-verification", s.number, signer_party(s),
          "went ahead with no pharmacy verification recorded before it");
    } else if (verification_ && verification_->event == "rejected" &&
               rejection_reported_ != verification_->number) {
      rejection_reported_ = verification_->number;
      add("programmed-after-rejection", s.number, signer_party(s),
          "went ahead although the pharmacy rejected the order at " +
              step_ref(verification_->number) + " (" + verification_->signer.name + ")");
    }
  }

  void on_verification(const Step& s) {
    verification_ = &s;
    if (nurse_) {
      add("verification-after-programming", s.number, signer_party(s),
          "recorded after the nurse's programming at " + step_ref(nurse_->number));
    }
  }

  void on_programming(const Step& s) {
    check_verified(s);
    if (r_.order)
      compare(s, order_values(*r_.order, order_step_), nurse_values(s), signer_party(s));
    nurse_ = &s;
  }

  Status on_event(const Step& s) {
    const std::string& kind = s.event;
    if (r_.order && !order_step_) {
      add("event-before-order", s.number, signer_party(s),
          "pump event '" + kind + "' recorded before the order");
    }
    if (nurse_ && !s.device.empty() && s.device != nurse_->device &&
        mismatched_devices_.insert(s.device).second) {
      add("device-mismatch", s.number, signer_party(s),
          "event signed by pump " + s.device + ", but the nurse programmed " + nurse_->device +
              " at " + step_ref(nurse_->number),
          s.device);
    }
    if (kind == "programming") {
      check_verified(s);
      compare(s, expected(), pump_values(s), signer_party(s));
      if (s.payload.find("library_bypassed")) {
        add("library-bypassed", s.number, operator_party(s),
            "the drug library was bypassed at the pump" + operator_note());
      }
    } else if (kind == "start" || kind == "restart") {
      if (kind == "start") {
        check_verified(s);
        if (!nurse_ && !start_reported_) {
          start_reported_ = true;
          add("start-before-programming", s.number, signer_party(s),
              "the pump started with no nurse's programming recorded before it");
        }
      }
      running_ = &s;
    } else if (kind == "rate-change") {
      Values got;
      got.rate_ml_h = number_field(s.payload, "rate_ml_h");
      compare(s, expected(), got, signer_party(s));
    } else if (kind == "soft-limit-override" || kind == "hard-limit-stop") {
      on_limit(s);
    } else if (kind == "alarm") {
      const std::string alarm = text_field(s.payload, "alarm");
      const std::string priority = text_field(s.payload, "priority");
      add("alarm", s.number, signer_party(s),
          "pump " + s.device + " raised alarm " + alarm +
              (priority.empty() ? "" : " (" + priority + " priority)"),
          alarm);
    } else if (kind == "completion" || kind == "stop") {
      running_ = nullptr;
    }
    last_event_ = &s;
    return Status();
  }

  void on_limit(const Step& s) {
    const Value* limit = s.payload.find("limit");
    std::string what;
    if (limit) {
      what = text_field(*limit, "bound") + " " + text_field(*limit, "kind") + " limit " +
             num(number_field(*limit, "value").value_or(0)) + " " + text_field(*limit, "unit");
    }
    if (s.event == "soft-limit-override") {
      add("soft-limit-override", s.number, operator_party(s),
          "the " + (what.empty() ? std::string("soft limit") : what) + " was overridden at pump " +
              s.device + operator_note(),
          what);
    } else {
      add("hard-limit-stop", s.number, operator_party(s),
          "pump " + s.device + " stopped the programming at its " +
              (what.empty() ? std::string("hard limit") : what) + operator_note(),
          what);
    }
  }

  // Flags recorded with the entry (facts as of its registration). Firmware
  // advisories and step order are worked out from the records instead.
  Status on_flags(const Step& s) {
    for (const std::string& flag : s.flags) {
      const std::string code = flag_code_of(flag);
      const std::string detail = flag_detail_of(flag);
      if (code == kFlagFirmwareUnknown || code == kFlagFirmwareUnapproved) {
        if (!seen_.insert(code + "|" + s.device + "|" + detail).second) continue;
        CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, reader_.device(s.device));
        const std::string maker = d ? d->maker : s.signer.org;
        add(code, s.number, Party{"maker", maker, maker}, "pump " + s.device + ": " + detail);
      } else if (code == kFlagDrugLibraryOutdated) {
        if (!seen_.insert(code + "|" + s.device + "|" + detail).second) continue;
        const std::string hospital = r_.order ? r_.order->hospital : s.signer.org;
        add(code, s.number, Party{"hospital", hospital, hospital}, detail);
      } else if (code == kFlagDeviceNotInstalled) {
        if (!seen_.insert(code + "|" + s.device).second) continue;
        CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, reader_.device(s.device));
        const std::string holder = d ? d->holder : s.signer.org;
        add(code, s.number, Party{"holder", holder, holder}, detail);
      } else if (code == kFlagClockSkew) {
        add(code, s.number, signer_party(s), detail);
      }
    }
    return Status();
  }

  void on_signer(const Step& s) {
    if (s.gap && s.gap->gap()) {
      add("sequence-gap", s.number, signer_party(s),
          s.signer.name + " skipped " + std::to_string(s.gap->got - s.gap->expected) +
              " sequence number(s) before this entry (expected " + std::to_string(s.gap->expected) +
              ", got " + std::to_string(s.gap->got) + ")");
    }
    if (s.signer.revoked_index && revoked_.insert(s.signer.kid).second) {
      add("signer-key-revoked", s.number, signer_party(s),
          "the key of " + s.signer.name + " (kid " + to_hex(s.signer.kid).substr(0, 16) +
              "...) was " + s.signer.revoked_how + " on " + utc_time(s.signer.revoked_ms) +
              " (log index " + std::to_string(*s.signer.revoked_index) +
              "), after it signed; the entries it signed before stay valid",
          to_hex(s.signer.kid));
    }
  }

  void finish() {
    if (running_ && last_event_) {
      add("no-end", last_event_->number, signer_party(*last_event_),
          "no completion or stop recorded after the " + running_->event + " at " +
              step_ref(running_->number));
    }
  }

  // Advisories naming the firmware a pump ran during the infusion: in force
  // at the time, published during it, or published later.
  Status advisories() {
    // (device, version) -> the steps that ran on it, in order.
    std::map<std::pair<std::string, std::string>, std::vector<const Step*>> runs;
    std::vector<std::pair<std::string, std::string>> order;
    for (const Step& s : r_.steps) {
      if (!s.firmware) continue;
      auto key = std::make_pair(s.device, s.firmware->version);
      if (runs[key].empty()) order.push_back(key);
      runs[key].push_back(&s);
    }
    for (const auto& key : order) CUSTOS_RETURN_IF_ERROR(advisories_for(key.first, runs[key]));
    return Status();
  }

  Status advisories_for(const std::string& device, const std::vector<const Step*>& steps) {
    CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, reader_.device(device));
    if (!d) return Status();
    const std::string& version = steps.front()->firmware->version;
    auto list = reader_.ledger().rule_record(advisories_by_firmware_key(d->maker, version));
    if (!list.ok()) return list.status().code() == ErrorCode::kNotFound ? Status() : list.status();
    auto ids = cbor::decode(*list);
    if (!ids.ok() || !ids->is(Type::kArray))
      return error(ErrorCode::kCorruption, "advisory list record does not decode");
    size_t examined = 0;
    for (const Value& id : ids->as_array()) {
      if (!id.is(Type::kText) || examined++ == kAdvisoriesPerFirmwareMax) break;
      CUSTOS_ASSIGN_OR_RETURN(std::optional<Advisory> adv,
                              reader_.record<Advisory>(advisory_key(id.as_text())));
      if (!adv || adv->index >= r_.log_size || !adv->affects(d->model, version)) continue;
      advisory(*d, version, *adv, steps);
    }
    return Status();
  }

  void advisory(const Device& d, const std::string& version, const Advisory& adv,
                const std::vector<const Step*>& steps) {
    std::string what = adv.id + " (" + adv.severity;
    for (const auto& cve : adv.cves) what += "; " + cve;
    if (!adv.fixed_in.empty()) what += "; fixed in " + adv.fixed_in;
    what += ", published by " + adv.issuer + " on " + utc_time(adv.published_ms) + ") names " +
            d.maker + " " + d.model + " firmware " + version + ", which pump " + d.id + " ran";
    const Party maker{"maker", d.maker, d.maker};
    const auto after = std::find_if(steps.begin(), steps.end(),
                                    [&](const Step* s) { return s->index > adv.index; });
    if (after == steps.begin()) {
      add(std::string(kFlagFirmwareUnderAdvisory), steps.front()->number, maker,
          what + ": in force at the time (published before " + step_ref(steps.front()->number) +
              ")",
          adv.id, "at-the-time");
    } else if (after != steps.end()) {
      add(std::string(kFlagFirmwareUnderAdvisory), (*after)->number, maker,
          what + ": published during the infusion, in force from " + step_ref((*after)->number),
          adv.id, "during");
    } else {
      add(std::string(kFlagFirmwareUnderAdvisory), steps.front()->number, maker,
          what + ": published later, after the last step on this firmware (" +
              step_ref(steps.back()->number) + ")",
          adv.id, "later");
    }
  }

  std::string status() const {
    if (!r_.order) return "unknown";
    if (running_) return "running";
    if (last_event_ && started_any()) return "ended";
    return order_status_name(r_.order->status);
  }

  bool started_any() const {
    return std::any_of(r_.steps.begin(), r_.steps.end(), [](const Step& s) {
      return s.kind == StepKind::kDeviceEvent && (s.event == "start" || s.event == "restart");
    });
  }

  Reader& reader_;
  IncidentReport& r_;
  size_t order_step_ = 0;
  const Step* verification_ = nullptr;
  const Step* nurse_ = nullptr;
  const Step* running_ = nullptr;
  const Step* last_event_ = nullptr;
  bool missing_verification_reported_ = false;
  size_t rejection_reported_ = 0;
  bool start_reported_ = false;
  std::set<std::string> mismatched_devices_;
  std::set<std::string> seen_;
  std::set<Hash256> revoked_;
};

}  // namespace

const char* step_kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::kOrder:
      return "order";
    case StepKind::kVerification:
      return "verification";
    case StepKind::kProgramming:
      return "programming";
    case StepKind::kDeviceEvent:
      return "device-event";
    case StepKind::kOther:
      break;
  }
  return "other";
}

Result<IncidentReport> incident_report(const ledger::Ledger& ledger, std::string_view order_id,
                                       const ReportOptions& options) {
  if (Status s = check_id(order_id); !s.ok())
    return error(ErrorCode::kInvalidArgument, "order id: " + s.message());
  IncidentReport r;
  r.order_id = std::string(order_id);
  r.log_size = ledger.head().log_size;
  Reader reader(ledger, r.log_size);
  CUSTOS_ASSIGN_OR_RETURN(r.order, reader.record<MedicationOrder>(order_key(order_id)));
  std::vector<ledger::EntryInfo> entries;
  CUSTOS_RETURN_IF_ERROR(
      reader.entries(ref("order", order_id), kReportStepsMax, r.log_size, entries, &r.truncated));
  // An order recorded after the report's snapshot began is not part of it.
  if (r.order && r.order->index >= r.log_size) r.order.reset();
  if (!r.order && entries.empty())
    return error(ErrorCode::kNotFound, "order '" + r.order_id + "' is not recorded");
  // Firmware installs after the last step do not matter.
  const uint64_t until = entries.empty() ? 0 : entries.back().index;
  for (auto& e : entries) {
    CUSTOS_ASSIGN_OR_RETURN(Step s, make_step(reader, std::move(e), until, options));
    s.number = r.steps.size() + 1;
    r.steps.push_back(std::move(s));
  }
  Analyzer analyzer(reader, r);
  CUSTOS_RETURN_IF_ERROR(analyzer.run());
  return r;
}

Result<OrderPage> patient_orders(const ledger::Ledger& ledger, std::string_view pseudonym,
                                 uint64_t cursor, size_t limit) {
  if (Status s = check_pseudonym(pseudonym); !s.ok())
    return error(ErrorCode::kInvalidArgument, "patient: " + s.message());
  ledger::Query q;
  q.ref = ref("patient", pseudonym);
  q.content_type = std::string(kTypeMedicationOrder);
  q.cursor = cursor;
  q.limit = std::clamp<size_t>(limit, 1, kPatientOrdersPageMax);
  CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, ledger.query(q));
  OrderPage out;
  out.next_cursor = page.next_cursor;
  for (const auto& e : page.entries) {
    const Value p = payload_of(e.statement);
    const std::string id = text_field(p, "order");
    auto bytes = ledger.rule_record(order_key(id));
    if (!bytes.ok()) return bytes.status();
    CUSTOS_ASSIGN_OR_RETURN(MedicationOrder o, MedicationOrder::decode(*bytes));
    out.orders.push_back(std::move(o));
  }
  return out;
}

}  // namespace custos::domain
