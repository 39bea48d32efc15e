#include "domain/rules.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "crypto/hash.h"
#include "ledger/policy.h"

namespace custos::domain {

// --- Apply: typed access to the domain records ---

namespace {

// Decoding a record (a CBOR tree, then its strings) costs more than reading
// it, and every event of a device reads the same few records: its device,
// organisation, firmware release, advisories, drug library. So decoded
// records are kept per thread, keyed by record key and checked against the
// record's current bytes: a changed record is decoded afresh, and nothing
// ever needs invalidating (a rolled-back block's records simply mismatch).
template <typename T>
struct DecodedRecords {
  struct Slot {
    Bytes bytes;
    T value;
  };
  std::unordered_map<std::string, Slot> slots;
  size_t bytes = 0;  // of the records held
};
// Then the cache starts over: the hot records of a few thousand devices fit,
// and a few large ones cannot pin much memory per thread and type.
constexpr size_t kDecodedRecordsPerTypeMax = 4096;
constexpr size_t kDecodedRecordBytesPerTypeMax = 4 << 20;

}  // namespace

template <typename T>
Result<std::optional<T>> Apply::load(const Bytes& key) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> bytes, state.get(key));
  if (!bytes) return std::optional<T>();
  thread_local DecodedRecords<T> cache;
  std::string cache_key(key.begin(), key.end());
  if (auto it = cache.slots.find(cache_key); it != cache.slots.end() && it->second.bytes == *bytes)
    return std::optional<T>(it->second.value);
  CUSTOS_ASSIGN_OR_RETURN(T value, T::decode(*bytes));
  if (cache.slots.size() >= kDecodedRecordsPerTypeMax ||
      cache.bytes + bytes->size() > kDecodedRecordBytesPerTypeMax) {
    cache.slots.clear();
    cache.bytes = 0;
  }
  cache.bytes += bytes->size();
  cache.slots.insert_or_assign(std::move(cache_key),
                               typename DecodedRecords<T>::Slot{std::move(*bytes), value});
  return std::optional<T>(std::move(value));
}

Result<std::optional<Org>> Apply::org(std::string_view id) const {
  return load<Org>(org_key(id));
}

Result<std::optional<Device>> Apply::device(std::string_view id) const {
  return load<Device>(device_key(id));
}

Result<std::optional<Device>> Apply::device_by_kid(const Hash256& kid) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> id, state.get(device_kid_key(kid)));
  if (!id) return std::optional<Device>();
  return device(std::string(id->begin(), id->end()));
}

Result<std::optional<FirmwareRelease>> Apply::firmware(std::string_view maker,
                                                       std::string_view version) const {
  return load<FirmwareRelease>(firmware_key(maker, version));
}

Result<std::optional<Advisory>> Apply::advisory(std::string_view id) const {
  return load<Advisory>(advisory_key(id));
}

Result<std::vector<Advisory>> Apply::advisories_for(std::string_view maker, std::string_view model,
                                                    std::string_view version) const {
  std::vector<Advisory> out;
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> list,
                          state.get(advisories_by_firmware_key(maker, version)));
  if (!list) return out;
  auto ids = cbor::decode(*list);
  if (!ids.ok() || !ids->is(cbor::Type::kArray))
    return error(ErrorCode::kCorruption, "advisory list record does not decode");
  for (const auto& id : ids->as_array()) {
    if (!id.is(cbor::Type::kText)) continue;
    CUSTOS_ASSIGN_OR_RETURN(std::optional<Advisory> adv, advisory(id.as_text()));
    if (adv && adv->affects(model, version)) out.push_back(std::move(*adv));
  }
  return out;
}

Result<std::optional<DrugLibrary>> Apply::drug_library(std::string_view hospital) const {
  return load<DrugLibrary>(drug_library_key(hospital));
}

Result<std::optional<MedicationOrder>> Apply::order(std::string_view id) const {
  return load<MedicationOrder>(order_key(id));
}

void Apply::add_ref(std::string_view kind, std::string_view id) {
  std::string r = ref(kind, id);
  if (r.size() > ledger::kRefBytesMax || outcome.refs.size() == ledger::kRefsPerEntryMax) return;
  if (std::find(outcome.refs.begin(), outcome.refs.end(), r) == outcome.refs.end())
    outcome.refs.push_back(std::move(r));
}

void Apply::flag(std::string_view code, const std::string& detail) {
  std::string f = std::string(code) + ": " + detail;
  if (f.size() > ledger::kFlagBytesMax) f.resize(ledger::kFlagBytesMax);
  if (outcome.flags.size() < ledger::kFlagsPerEntryMax) outcome.flags.push_back(std::move(f));
}

Status Apply::refuse(ErrorCode code, const std::string& why) const {
  return error(code, why);
}

// --- DomainRules ---

namespace {
std::string role_list(uint32_t roles) {
  std::string out;
  for (const auto& n : ledger::role_names(roles)) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

std::string org_kind_list(uint32_t kinds) {
  std::string out;
  for (uint32_t bit = 1; bit != 0 && bit <= kinds; bit <<= 1) {
    if (kinds & bit)
      out += (out.empty() ? "" : " or ") + std::string(org_kind_name(static_cast<OrgKind>(bit)));
  }
  return out;
}
}  // namespace

DomainRules::DomainRules() {
  for (auto table : {org_rules(), device_rules(), infusion_rules(), record_rules()}) {
    for (const TypeRule& r : table) rules_.push_back(&r);
  }
}

const TypeRule* DomainRules::find(std::string_view content_type) const {
  for (const TypeRule* r : rules_) {
    if (r->content_type == content_type) return r;
  }
  return nullptr;
}

bool DomainRules::defines(std::string_view content_type) const {
  return find(content_type) != nullptr;
}

Status DomainRules::check(const cose::Statement& statement, const ledger::KeyState& signer) const {
  const TypeRule* rule = find(statement.header.content_type);
  if (!rule) return Status();
  if (!(signer.roles & rule->roles)) {
    return error(ErrorCode::kPolicy,
                 std::string(rule->what) + " may be signed only by a key with role " +
                     role_list(rule->roles) + "; this key has " + role_list(signer.roles));
  }
  return rule->check(statement, signer);
}

Result<ledger::RuleOutcome> DomainRules::apply(const cose::Statement& statement,
                                               const ledger::RuleContext& context,
                                               ledger::RuleState& state) const {
  Apply a(statement, context, state);
  if (!context.signer->org.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(a.signer_org, a.org(context.signer->org));
  }
  const TypeRule* rule = find(statement.header.content_type);
  if (!rule) {
    CUSTOS_RETURN_IF_ERROR(apply_core(statement, a));
    return std::move(a.outcome);
  }
  if (rule->org_kinds != 0 && (!a.signer_org || !(a.signer_org->kind & rule->org_kinds))) {
    return error(
        ErrorCode::kPolicy,
        std::string(rule->what) + " must be signed by a key of a " +
            org_kind_list(rule->org_kinds) + " organisation; this key belongs to " +
            (a.signer_org ? "'" + a.signer_org->id + "', a " + org_kind_name(a.signer_org->kind)
                          : std::string("no organisation")));
  }
  // The signer's clock against the consortium's: accepted, but a device
  // whose clock drifts (or a replayed message) shows up.
  const uint64_t iat_ms = statement.header.issued_at_s * 1000;
  const uint64_t skew_ms = iat_ms > a.time_ms() ? iat_ms - a.time_ms() : a.time_ms() - iat_ms;
  if (skew_ms > kClockSkewMaxMs) {
    a.flag(kFlagClockSkew, "signed at " + std::to_string(statement.header.issued_at_s) +
                               " s, registered " + std::to_string(skew_ms / 1000) + " s " +
                               (iat_ms > a.time_ms() ? "earlier" : "later"));
  }
  CUSTOS_RETURN_IF_ERROR(rule->apply(a));
  return std::move(a.outcome);
}

// Core statements the domain constrains: a key registered for an
// organisation needs the organisation to exist.
Status DomainRules::apply_core(const cose::Statement& statement, Apply& a) const {
  if (statement.header.content_type != ledger::kTypeKeyRegister) return Status();
  CUSTOS_ASSIGN_OR_RETURN(ledger::KeyRegistration reg,
                          ledger::parse_key_registration(statement.payload()));
  if (reg.org.empty()) return Status();
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Org> org, a.org(reg.org));
  if (!org) {
    return a.refuse(ErrorCode::kNotFound, "key registration: field 'org': organisation '" +
                                              reg.org + "' is not registered");
  }
  a.add_ref("org", reg.org);
  return Status();
}

std::shared_ptr<const ledger::Rules> make_rules() {
  return std::make_shared<DomainRules>();
}

}  // namespace custos::domain
