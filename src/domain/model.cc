#include "domain/model.h"

#include <algorithm>

namespace custos::domain {

using cbor::Type;
using cbor::Value;

namespace {
constexpr std::pair<OrgKind, const char*> kOrgKinds[] = {
    {kOrgHospital, "hospital"},       {kOrgMaker, "maker"},         {kOrgPharmacy, "pharmacy"},
    {kOrgDistributor, "distributor"}, {kOrgRegulator, "regulator"}, {kOrgHie, "hie"},
};

Bytes key_of(char kind, std::initializer_list<std::string_view> parts) {
  std::string k{kind, '/'};
  bool first = true;
  for (auto p : parts) {
    if (!first) k += '/';
    first = false;
    k += p;
  }
  return Bytes(k.begin(), k.end());
}

// "<kind>/" and the 32 raw bytes of a digest.
Bytes digest_key(char kind, const Hash256& digest) {
  Bytes k(2 + digest.size());
  k[0] = kind;
  k[1] = '/';
  std::copy(digest.begin(), digest.end(), k.begin() + 2);
  return k;
}

// A map built field by field; empty optional texts are left out.
class MapBuilder {
 public:
  MapBuilder& text(std::string_view k, std::string_view v) {
    m_.emplace_back(cbor::text(k), cbor::text(v));
    return *this;
  }
  MapBuilder& text_if(std::string_view k, std::string_view v) {
    if (!v.empty()) text(k, v);
    return *this;
  }
  MapBuilder& uint(std::string_view k, uint64_t v) {
    m_.emplace_back(cbor::text(k), Value::uint(v));
    return *this;
  }
  MapBuilder& digest(std::string_view k, const Hash256& v) {
    m_.emplace_back(cbor::text(k), digest_value(v));
    return *this;
  }
  MapBuilder& number(std::string_view k, double v) {
    m_.emplace_back(cbor::text(k), Value::float64(v));
    return *this;
  }
  MapBuilder& texts(std::string_view k, const std::vector<std::string>& v) {
    cbor::Array a;
    for (const auto& t : v) a.push_back(cbor::text(t));
    m_.emplace_back(cbor::text(k), Value::array(std::move(a)));
    return *this;
  }
  MapBuilder& value(std::string_view k, Value v) {
    m_.emplace_back(cbor::text(k), std::move(v));
    return *this;
  }
  Value build() { return Value::map(std::move(m_)); }
  Bytes encode() { return cbor::encode(build()); }

 private:
  cbor::Map m_;
};

double number_of(const Value& map, std::string_view field) {
  const Value* v = map.find(field);
  if (!v) return 0;
  if (v->is(Type::kFloat)) return v->as_float();
  if (v->is(Type::kUnsigned)) return static_cast<double>(v->as_uint());
  return 0;
}

Value quantity_value(const Quantity& q) {
  return MapBuilder().number("value", q.value).text("unit", q.unit).build();
}

Quantity quantity_of(const Value& map, std::string_view field) {
  const Value* v = map.find(field);
  if (!v || !v->is(Type::kMap)) return {};
  return Quantity{number_of(*v, "value"), text_of(*v, "unit")};
}
}  // namespace

const char* org_kind_name(OrgKind kind) {
  for (const auto& [k, n] : kOrgKinds) {
    if (k == kind) return n;
  }
  return "?";
}

std::optional<OrgKind> org_kind_from_name(std::string_view name) {
  for (const auto& [k, n] : kOrgKinds) {
    if (name == n) return k;
  }
  return std::nullopt;
}

std::vector<std::string_view> org_kind_names() {
  std::vector<std::string_view> out;
  for (const auto& [k, n] : kOrgKinds) out.emplace_back(n);
  return out;
}

std::string ref(std::string_view kind, std::string_view id) {
  return std::string(kind) + ":" + std::string(id);
}

Bytes org_key(std::string_view org) {
  return key_of('o', {org});
}
Bytes device_key(std::string_view device) {
  return key_of('d', {device});
}
Bytes device_kid_key(const Hash256& kid) {
  return digest_key('k', kid);
}
Bytes firmware_key(std::string_view maker, std::string_view version) {
  return key_of('f', {maker, version});
}
Bytes advisory_key(std::string_view id) {
  return key_of('a', {id});
}
Bytes advisories_by_firmware_key(std::string_view maker, std::string_view version) {
  return key_of('v', {maker, version});
}
Bytes installed_firmware_key(std::string_view maker, std::string_view version,
                             std::string_view device) {
  return key_of('i', {maker, version, device});
}
Bytes installed_firmware_prefix(std::string_view maker, std::string_view version) {
  Bytes k = key_of('i', {maker, version});
  k.push_back('/');
  return k;
}
Bytes drug_library_key(std::string_view hospital) {
  return key_of('l', {hospital});
}
Bytes order_key(std::string_view order) {
  return key_of('x', {order});
}
Bytes order_step_key(const Hash256& entry) {
  return digest_key('s', entry);  // 'p' is a patient (clinical.h)
}

Value digest_value(const Hash256& h) {
  return Value::bytes(ByteView(h));
}

Result<Hash256> digest_of(const Value& map, std::string_view field) {
  const Value* v = map.find(field);
  if (!v || !v->is(Type::kBytes) || v->as_bytes().size() != 32)
    return error(ErrorCode::kCorruption,
                 "record field '" + std::string(field) + "' is not a digest");
  Hash256 h;
  std::copy(v->as_bytes().begin(), v->as_bytes().end(), h.begin());
  return h;
}

std::string text_of(const Value& map, std::string_view field) {
  const Value* v = map.find(field);
  return v && v->is(Type::kText) ? v->as_text() : std::string();
}

uint64_t uint_of(const Value& map, std::string_view field) {
  const Value* v = map.find(field);
  return v && v->is(Type::kUnsigned) ? v->as_uint() : 0;
}

std::vector<std::string> texts_of(const Value& map, std::string_view field) {
  std::vector<std::string> out;
  const Value* a = map.find(field);
  if (!a || !a->is(Type::kArray)) return out;
  for (const auto& t : a->as_array()) {
    if (t.is(Type::kText)) out.push_back(t.as_text());
  }
  return out;
}

Result<Value> decode_record(ByteView bytes, const char* what) {
  auto v = cbor::decode(bytes);
  if (!v.ok() || !v->is(Type::kMap))
    return error(ErrorCode::kCorruption, std::string(what) + " record does not decode");
  return v;
}

// --- Org ---
Bytes Org::encode() const {
  return MapBuilder()
      .text("id", id)
      .text("name", name)
      .text("kind", org_kind_name(kind))
      .text_if("gln", gln)
      .uint("index", registered_index)
      .encode();
}

Result<Org> Org::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "organisation"));
  Org o;
  o.id = text_of(v, "id");
  o.name = text_of(v, "name");
  auto kind = org_kind_from_name(text_of(v, "kind"));
  if (!kind) return error(ErrorCode::kCorruption, "organisation record has an unknown kind");
  o.kind = *kind;
  o.gln = text_of(v, "gln");
  o.registered_index = uint_of(v, "index");
  return o;
}

// --- Device ---
std::string Udi::hrf() const {
  std::string s = "(01)" + di;
  if (!manufactured.empty())
    s += "(11)" + manufactured.substr(2, 2) + manufactured.substr(5, 2) + manufactured.substr(8, 2);
  if (!expires.empty())
    s += "(17)" + expires.substr(2, 2) + expires.substr(5, 2) + expires.substr(8, 2);
  if (!lot.empty()) s += "(10)" + lot;
  if (!serial.empty()) s += "(21)" + serial;
  return s;
}

Bytes Device::encode() const {
  MapBuilder udi_map;
  udi_map.text("di", udi.di)
      .text("serial", udi.serial)
      .text_if("lot", udi.lot)
      .text_if("manufactured", udi.manufactured)
      .text_if("expires", udi.expires);
  MapBuilder m;
  m.text("id", id)
      .text("maker", maker)
      .text("holder", holder)
      .text("model", model)
      .text("class", device_class)
      .value("udi", udi_map.build())
      .digest("kid", kid)
      .text("status", status == DeviceStatus::kActive ? "active" : "decommissioned")
      .text_if("care_area", care_area)
      .text_if("location", location)
      .uint("index", registered_index);
  if (firmware) {
    m.value("firmware", MapBuilder()
                            .text("version", firmware->version)
                            .digest("image", firmware->image_sha256)
                            .uint("index", firmware->since_index)
                            .uint("ms", firmware->since_ms)
                            .build());
  }
  return m.encode();
}

Result<Device> Device::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "device"));
  Device d;
  d.id = text_of(v, "id");
  d.maker = text_of(v, "maker");
  d.holder = text_of(v, "holder");
  d.model = text_of(v, "model");
  d.device_class = text_of(v, "class");
  if (const Value* u = v.find("udi"); u && u->is(Type::kMap)) {
    d.udi = Udi{text_of(*u, "di"), text_of(*u, "serial"), text_of(*u, "lot"),
                text_of(*u, "manufactured"), text_of(*u, "expires")};
  }
  CUSTOS_ASSIGN_OR_RETURN(d.kid, digest_of(v, "kid"));
  d.status =
      text_of(v, "status") == "active" ? DeviceStatus::kActive : DeviceStatus::kDecommissioned;
  d.care_area = text_of(v, "care_area");
  d.location = text_of(v, "location");
  d.registered_index = uint_of(v, "index");
  if (const Value* f = v.find("firmware"); f && f->is(Type::kMap)) {
    FirmwareState fw;
    fw.version = text_of(*f, "version");
    CUSTOS_ASSIGN_OR_RETURN(fw.image_sha256, digest_of(*f, "image"));
    fw.since_index = uint_of(*f, "index");
    fw.since_ms = uint_of(*f, "ms");
    d.firmware = fw;
  }
  return d;
}

// --- Firmware release ---
Bytes FirmwareRelease::encode() const {
  return MapBuilder()
      .text("maker", maker)
      .text("version", version)
      .digest("image", image_sha256)
      .digest("sbom", sbom_sha256)
      .texts("models", models)
      .uint("index", index)
      .encode();
}

Result<FirmwareRelease> FirmwareRelease::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "firmware release"));
  FirmwareRelease r;
  r.maker = text_of(v, "maker");
  r.version = text_of(v, "version");
  CUSTOS_ASSIGN_OR_RETURN(r.image_sha256, digest_of(v, "image"));
  CUSTOS_ASSIGN_OR_RETURN(r.sbom_sha256, digest_of(v, "sbom"));
  r.models = texts_of(v, "models");
  r.index = uint_of(v, "index");
  return r;
}

// --- Advisory ---
bool Advisory::affects(std::string_view model, std::string_view version) const {
  const auto has = [](const std::vector<std::string>& v, std::string_view x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  return (models.empty() || has(models, model)) && has(versions, version);
}

Bytes Advisory::encode() const {
  return MapBuilder()
      .text("id", id)
      .text("issuer", issuer)
      .text("maker", maker)
      .texts("models", models)
      .texts("versions", versions)
      .texts("cves", cves)
      .text("severity", severity)
      .text_if("fixed_in", fixed_in)
      .uint("index", index)
      .uint("ms", published_ms)
      .encode();
}

Result<Advisory> Advisory::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "advisory"));
  Advisory a;
  a.id = text_of(v, "id");
  a.issuer = text_of(v, "issuer");
  a.maker = text_of(v, "maker");
  a.models = texts_of(v, "models");
  a.versions = texts_of(v, "versions");
  a.cves = texts_of(v, "cves");
  a.severity = text_of(v, "severity");
  a.fixed_in = text_of(v, "fixed_in");
  a.index = uint_of(v, "index");
  a.published_ms = uint_of(v, "ms");
  return a;
}

// --- Drug library ---
Bytes DrugLibrary::encode() const {
  return MapBuilder()
      .text("hospital", hospital)
      .text("version", version)
      .digest("sha256", sha256)
      .uint("index", index)
      .uint("ms", since_ms)
      .encode();
}

Result<DrugLibrary> DrugLibrary::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "drug library"));
  DrugLibrary l;
  l.hospital = text_of(v, "hospital");
  l.version = text_of(v, "version");
  CUSTOS_ASSIGN_OR_RETURN(l.sha256, digest_of(v, "sha256"));
  l.index = uint_of(v, "index");
  l.since_ms = uint_of(v, "ms");
  return l;
}

// --- Medication order ---
namespace {
constexpr std::pair<OrderStatus, const char*> kOrderStatuses[] = {
    {OrderStatus::kOrdered, "ordered"},   {OrderStatus::kVerified, "verified"},
    {OrderStatus::kRejected, "rejected"}, {OrderStatus::kProgrammed, "programmed"},
    {OrderStatus::kRunning, "running"},   {OrderStatus::kEnded, "ended"},
};
}  // namespace

const char* order_status_name(OrderStatus status) {
  for (const auto& [s, n] : kOrderStatuses) {
    if (s == status) return n;
  }
  return "?";
}

Bytes MedicationOrder::encode() const {
  MapBuilder m;
  m.text("id", id)
      .text("hospital", hospital)
      .text("patient", patient)
      .text("drug", drug)
      .text_if("drug_code", drug_code)
      .value("dose", quantity_value(dose))
      .value("rate", quantity_value(rate))
      .number("vtbi_ml", vtbi_ml)
      .text("route", route)
      .text("care_area", care_area)
      .digest("prescriber", prescriber)
      .digest("entry", entry)
      .uint("index", index)
      .uint("ms", ordered_ms)
      .text("status", order_status_name(status))
      .text_if("device", device);
  if (verification_entry != Hash256{}) m.digest("verification", verification_entry);
  if (programming_entry != Hash256{}) m.digest("programming", programming_entry);
  return m.encode();
}

Result<MedicationOrder> MedicationOrder::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "medication order"));
  MedicationOrder o;
  o.id = text_of(v, "id");
  o.hospital = text_of(v, "hospital");
  o.patient = text_of(v, "patient");
  o.drug = text_of(v, "drug");
  o.drug_code = text_of(v, "drug_code");
  o.dose = quantity_of(v, "dose");
  o.rate = quantity_of(v, "rate");
  o.vtbi_ml = number_of(v, "vtbi_ml");
  o.route = text_of(v, "route");
  o.care_area = text_of(v, "care_area");
  CUSTOS_ASSIGN_OR_RETURN(o.prescriber, digest_of(v, "prescriber"));
  CUSTOS_ASSIGN_OR_RETURN(o.entry, digest_of(v, "entry"));
  o.index = uint_of(v, "index");
  o.ordered_ms = uint_of(v, "ms");
  const std::string status = text_of(v, "status");
  bool known = false;
  for (const auto& [s, n] : kOrderStatuses) {
    if (status == n) {
      o.status = s;
      known = true;
    }
  }
  if (!known) return error(ErrorCode::kCorruption, "medication order record has an unknown status");
  o.device = text_of(v, "device");
  if (v.find("verification")) {
    CUSTOS_ASSIGN_OR_RETURN(o.verification_entry, digest_of(v, "verification"));
  }
  if (v.find("programming")) {
    CUSTOS_ASSIGN_OR_RETURN(o.programming_entry, digest_of(v, "programming"));
  }
  return o;
}

Bytes OrderStep::encode() const {
  return MapBuilder().text("order", order).text("kind", kind).text_if("outcome", outcome).encode();
}

Result<OrderStep> OrderStep::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "order step"));
  return OrderStep{text_of(v, "order"), text_of(v, "kind"), text_of(v, "outcome")};
}

}  // namespace custos::domain
