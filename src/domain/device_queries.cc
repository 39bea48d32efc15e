#include "domain/device_queries.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "cose/statement.h"

namespace custos::domain {

namespace {

constexpr std::string_view kTypePrefix = "application/vnd.custos.";
constexpr std::string_view kTypeSuffix = "+cbor";
// Timeline summaries quote at most this much of a free-text note.
constexpr size_t kSummaryNoteBytesMax = 80;
// An exposure cursor is a record key: "i/" + maker + version + device ids.
constexpr size_t kCursorBytesMax = 512;

// The first key after `key` in byte order: where the next page starts.
Bytes after(Bytes key) {
  key.push_back(0);
  return key;
}

bool has(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A payload as stored (checked on admission); nullopt if it does not decode,
// which only a corrupted store could cause.
std::optional<cbor::Value> payload_of(const ledger::EntryInfo& e) {
  auto st = cose::parse_statement(e.statement);
  if (!st.ok()) return std::nullopt;
  auto v = cbor::decode(st->payload());
  if (!v.ok() || !v->is(cbor::Type::kMap)) return std::nullopt;
  return std::move(v).value();
}

std::string number_field(const cbor::Value& m, std::string_view field) {
  const cbor::Value* v = m.find(field);
  if (!v) return "";
  if (v->is(cbor::Type::kFloat)) return number(v->as_float());
  if (v->is(cbor::Type::kUnsigned)) return std::to_string(v->as_uint());
  return "";
}

std::string note(std::string s) {
  if (s.size() > kSummaryNoteBytesMax) s = s.substr(0, kSummaryNoteBytesMax) + "...";
  return s;
}

std::string describe_event(const cbor::Value& p) {
  const std::string event = text_of(p, "event");
  std::string s = event;
  if (event == "programming") {
    s += ": " + text_of(p, "drug") + " " + number_field(p, "rate_ml_h") + " mL/h, VTBI " +
         number_field(p, "vtbi_ml") + " mL, ";
    s += p.find("drug_library") ? "library " + text_of(p, "drug_library") : "library bypassed";
  } else if (event == "rate-change") {
    s += " to " + number_field(p, "rate_ml_h") + " mL/h";
  } else if (event == "alarm" || event == "alarm-cleared") {
    s += " " + text_of(p, "alarm");
    if (p.find("priority")) s += " (" + text_of(p, "priority") + ")";
  } else if (const cbor::Value* l = p.find("limit"); l && l->is(cbor::Type::kMap)) {
    s += ": " + text_of(*l, "bound") + " limit " + number_field(*l, "value") + " " +
         text_of(*l, "unit");
  } else if (event == "status") {
    std::string parts;
    if (p.find("state")) parts += text_of(p, "state");
    if (p.find("battery_pct"))
      parts += (parts.empty() ? "" : ", ") + std::string("battery ") +
               number_field(p, "battery_pct") + "%";
    if (!parts.empty()) s += ": " + parts;
  }
  if (p.find("order")) s += " (order " + text_of(p, "order") + ")";
  return s;
}

std::string short_hex(const cbor::Value& p, std::string_view field) {
  auto d = digest_of(p, field);
  return d.ok() ? to_hex(*d).substr(0, 16) : "?";
}

// What an entry says, in words, for a timeline line.
std::string describe(const ledger::EntryInfo& e, const SignerInfo& signer) {
  const std::string& type = e.header.content_type;
  const std::string kind = DeviceQueries::kind_of(type);
  auto payload = payload_of(e);
  if (!payload) return kind;
  const cbor::Value& p = *payload;
  if (type == kTypeDeviceRegister) {
    std::string s = "registered by " + (signer.org.empty() ? signer.name : signer.org) + ": " +
                    text_of(p, "class") + " " + text_of(p, "model");
    if (const cbor::Value* u = p.find("udi"); u && u->is(cbor::Type::kMap))
      s += ", serial " + text_of(*u, "serial");
    if (const cbor::Value* f = p.find("firmware"); f && f->is(cbor::Type::kMap))
      s += ", firmware " + text_of(*f, "version");
    return s;
  }
  if (type == kTypeDeviceCustody) return "custody to " + text_of(p, "to");
  if (type == kTypeDeviceInstall)
    return "installed in " + text_of(p, "care_area") + ", " + text_of(p, "location");
  if (type == kTypeDeviceMaintenance) {
    std::string s = "maintenance (" + text_of(p, "kind") + "): " + text_of(p, "outcome");
    if (p.find("note")) s += ", " + note(text_of(p, "note"));
    return s;
  }
  if (type == kTypeDeviceDecommission) return "decommissioned: " + note(text_of(p, "reason"));
  if (type == kTypeFirmwareInstall)
    return "firmware " + text_of(p, "version") + " installed (image " +
           short_hex(p, "image_sha256") + ")";
  if (type == kTypeDeviceEvent) return describe_event(p);
  return kind;
}

// The (version, image) an entry of the device-firmware ref reports.
Result<std::pair<std::string, Hash256>> firmware_of(const ledger::EntryInfo& e) {
  auto payload = payload_of(e);
  const cbor::Value* fw = nullptr;
  if (payload && e.header.content_type == kTypeFirmwareInstall) fw = &*payload;
  if (payload && e.header.content_type == kTypeDeviceRegister) fw = payload->find("firmware");
  if (!fw || !fw->is(cbor::Type::kMap))
    return error(ErrorCode::kCorruption,
                 "entry " + std::to_string(e.index) + " names no firmware though indexed so");
  CUSTOS_ASSIGN_OR_RETURN(Hash256 image, digest_of(*fw, "image_sha256"));
  return std::make_pair(text_of(*fw, "version"), image);
}

// The list record "v/<maker>/<version>" -> advisory ids.
Result<std::vector<std::string>> advisory_ids(const Bytes& list) {
  auto v = cbor::decode(list);
  if (!v.ok() || !v->is(cbor::Type::kArray))
    return error(ErrorCode::kCorruption, "advisory list record does not decode");
  std::vector<std::string> ids;
  for (const auto& id : v->as_array()) {
    if (id.is(cbor::Type::kText)) ids.push_back(id.as_text());
  }
  return ids;
}

size_t page_limit(size_t limit, size_t max) {
  return std::clamp<size_t>(limit, 1, max);
}

}  // namespace

std::string DeviceQueries::kind_of(std::string_view content_type) {
  if (content_type.size() > kTypePrefix.size() + kTypeSuffix.size() &&
      content_type.substr(0, kTypePrefix.size()) == kTypePrefix &&
      content_type.substr(content_type.size() - kTypeSuffix.size()) == kTypeSuffix) {
    return std::string(content_type.substr(
        kTypePrefix.size(), content_type.size() - kTypePrefix.size() - kTypeSuffix.size()));
  }
  return std::string(content_type);
}

template <typename T>
Result<std::optional<T>> DeviceQueries::load(const Bytes& key) const {
  auto bytes = ledger_.rule_record(key);
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kNotFound) return std::optional<T>();
    return bytes.status();
  }
  CUSTOS_ASSIGN_OR_RETURN(T value, T::decode(*bytes));
  return std::optional<T>(std::move(value));
}

SignerInfo DeviceQueries::signer(const Hash256& kid) const {
  SignerInfo s;
  s.kid = kid;
  auto k = ledger_.key(kid);
  if (!k.ok()) return s;
  s.known = true;
  s.name = k->name;
  s.roles = k->roles;
  s.org = k->org;
  s.revoked = k->revoked();
  return s;
}

Evidence DeviceQueries::evidence(const ledger::EntryInfo& e) const {
  return Evidence{e.id, e.index, e.registered_ms, signer(e.header.kid)};
}

Result<Evidence> DeviceQueries::evidence(uint64_t index) const {
  CUSTOS_ASSIGN_OR_RETURN(ledger::EntryInfo e, ledger_.entry_at(index));
  return evidence(e);
}

Result<ledger::QueryPage> DeviceQueries::newest(const std::string& ref, uint64_t bound,
                                                size_t limit) const {
  if (bound == 0) return ledger::QueryPage{};  // nothing below index 0 (0 would mean "all")
  ledger::Query q;
  q.ref = ref;
  q.cursor = bound;
  q.descending = true;
  q.limit = limit;
  return ledger_.query(q);
}

Result<std::vector<Advisory>> DeviceQueries::advisories_naming(std::string_view maker,
                                                               std::string_view version) const {
  std::vector<Advisory> out;
  auto list = ledger_.rule_record(advisories_by_firmware_key(maker, version));
  if (!list.ok()) {
    if (list.status().code() == ErrorCode::kNotFound) return out;
    return list.status();
  }
  CUSTOS_ASSIGN_OR_RETURN(std::vector<std::string> ids, advisory_ids(*list));
  for (const auto& id : ids) {
    CUSTOS_ASSIGN_OR_RETURN(std::optional<Advisory> adv, load<Advisory>(advisory_key(id)));
    if (adv) out.push_back(std::move(*adv));
  }
  return out;
}

Result<std::vector<Advisory>> DeviceQueries::advisories_for(const Device& d) const {
  std::vector<Advisory> out;
  if (!d.firmware) return out;
  CUSTOS_ASSIGN_OR_RETURN(std::vector<Advisory> named,
                          advisories_naming(d.maker, d.firmware->version));
  for (auto& a : named) {
    if (a.affects(d.model, d.firmware->version)) out.push_back(std::move(a));
  }
  return out;
}

// --- One device ---

Result<DeviceView> DeviceQueries::device(std::string_view id) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, load<Device>(device_key(id)));
  if (!d) return error(ErrorCode::kNotFound, "device '" + std::string(id) + "' is not registered");
  DeviceView v;
  v.device = std::move(*d);
  if (SignerInfo k = signer(v.device.kid); k.known) v.key = k;
  if (v.device.firmware) {
    CUSTOS_ASSIGN_OR_RETURN(
        v.release, load<FirmwareRelease>(firmware_key(v.device.maker, v.device.firmware->version)));
  }
  CUSTOS_ASSIGN_OR_RETURN(v.advisories, advisories_for(v.device));
  return v;
}

Result<TimelinePage> DeviceQueries::timeline(std::string_view id, const TimelineQuery& tq) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, load<Device>(device_key(id)));
  if (!d) return error(ErrorCode::kNotFound, "device '" + std::string(id) + "' is not registered");
  ledger::Query q;
  q.ref = ref("device", id);
  q.from_ms = tq.from_ms;
  q.to_ms = tq.to_ms;
  q.cursor = tq.cursor;
  q.limit = page_limit(tq.limit, kTimelinePageMax);
  q.descending = tq.descending;
  CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, ledger_.query(q));
  TimelinePage out;
  out.next_cursor = page.next_cursor;
  std::map<Hash256, SignerInfo> signers;  // a device's entries come from few keys
  for (auto& e : page.entries) {
    auto it = signers.find(e.header.kid);
    if (it == signers.end()) it = signers.emplace(e.header.kid, signer(e.header.kid)).first;
    TimelineItem item;
    item.signer = it->second;
    item.kind = kind_of(e.header.content_type);
    item.summary = describe(e, item.signer);
    item.entry = std::move(e);
    out.items.push_back(std::move(item));
  }
  return out;
}

// --- State at a time ---

// Walks the device's custody entries newest first from `bound`: the newest
// installation and decommissioning above the newest holder change, then that
// change (a custody transfer, or the registration by the maker).
Result<PlacementAtTime> DeviceQueries::placement_at(const Device& d, uint64_t bound) const {
  PlacementAtTime p;
  bool install_settled = false;  // an installation, or a transfer that ended one
  size_t seen = 0;
  const std::string custody_ref = ref("device-custody", d.id);
  while (seen < kPlacementScanMax) {
    CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, newest(custody_ref, bound, 64));
    for (const auto& e : page.entries) {
      ++seen;
      const std::string& type = e.header.content_type;
      if (type == kTypeDeviceDecommission && !p.decommissioned_by) {
        p.decommissioned = true;
        p.decommissioned_by = evidence(e);
      } else if (type == kTypeDeviceInstall && !install_settled) {
        auto payload = payload_of(e);
        if (payload) {
          p.care_area = text_of(*payload, "care_area");
          p.location = text_of(*payload, "location");
        }
        p.installed = evidence(e);
        install_settled = true;
      } else if (type == kTypeDeviceCustody || type == kTypeDeviceRegister) {
        auto payload = payload_of(e);
        p.holder = type == kTypeDeviceRegister || !payload ? d.maker : text_of(*payload, "to");
        p.holder_since = evidence(e);
        return p;
      }
    }
    if (!page.next_cursor) {
      return error(ErrorCode::kCorruption,
                   "no registration or custody entry found for device '" + d.id + "'");
    }
    bound = *page.next_cursor;
  }
  return error(ErrorCode::kInternal, "device '" + d.id + "' has more than " +
                                         std::to_string(kPlacementScanMax) +
                                         " custody and installation entries before that time");
}

Result<std::optional<FirmwareAtTime>> DeviceQueries::firmware_at(const Device& d,
                                                                 uint64_t bound) const {
  CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, newest(ref("device-firmware", d.id), bound, 1));
  if (page.entries.empty()) return std::optional<FirmwareAtTime>();
  const ledger::EntryInfo& e = page.entries[0];
  FirmwareAtTime fw;
  CUSTOS_ASSIGN_OR_RETURN(auto version_image, firmware_of(e));
  fw.version = version_image.first;
  fw.image_sha256 = version_image.second;
  fw.from_registration = e.header.content_type == kTypeDeviceRegister;
  fw.installed = evidence(e);
  fw.flags = e.flags;
  CUSTOS_ASSIGN_OR_RETURN(fw.release, load<FirmwareRelease>(firmware_key(d.maker, fw.version)));
  if (fw.release) {
    // Releases never change once registered, so today's record is T's too.
    fw.released_at_time = fw.release->index < bound;
    fw.image_matches = fw.release->image_sha256 == fw.image_sha256;
    fw.approved_for_model = has(fw.release->models, d.model);
  }
  CUSTOS_ASSIGN_OR_RETURN(std::vector<Advisory> named, advisories_naming(d.maker, fw.version));
  for (const auto& a : named) {
    if (!a.affects(d.model, fw.version)) continue;
    if (a.index < bound) fw.advisories_at_time.push_back(a);
    fw.advisories_now.push_back(a);
  }
  return std::optional<FirmwareAtTime>(std::move(fw));
}

Result<DeviceStateAtTime> DeviceQueries::state_at(std::string_view id, uint64_t at_ms) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d, load<Device>(device_key(id)));
  if (!d) return error(ErrorCode::kNotFound, "device '" + std::string(id) + "' is not registered");
  // T as a log position: everything below `bound` was registered at or
  // before T (block times never go back). One binary search over blocks.
  ledger::Query last;
  if (at_ms < UINT64_MAX) last.to_ms = at_ms + 1;
  last.descending = true;
  last.limit = 1;
  CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage newest_at, ledger_.query(last));
  const uint64_t bound = newest_at.entries.empty() ? 0 : newest_at.entries[0].index + 1;
  if (d->registered_index >= bound) {
    CUSTOS_ASSIGN_OR_RETURN(ledger::EntryInfo reg, ledger_.entry_at(d->registered_index));
    return error(ErrorCode::kNotFound, "device '" + d->id + "' was registered at " +
                                           std::to_string(reg.registered_ms) +
                                           " ms, after the time asked about");
  }
  DeviceStateAtTime s;
  s.device = d->id;
  s.at_ms = at_ms;
  s.log_size_at = bound;
  CUSTOS_ASSIGN_OR_RETURN(s.placement, placement_at(*d, bound));
  CUSTOS_ASSIGN_OR_RETURN(s.firmware, firmware_at(*d, bound));
  CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage lib, newest(ref("device-library", d->id), bound, 1));
  if (!lib.entries.empty()) {
    auto payload = payload_of(lib.entries[0]);
    s.reported_library =
        ReportedLibrary{payload ? text_of(*payload, "drug_library") : "", evidence(lib.entries[0])};
  }
  CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage hosp,
                          newest(ref("drug-library", s.placement.holder), bound, 1));
  if (!hosp.entries.empty()) {
    const ledger::EntryInfo& e = hosp.entries[0];
    auto payload = payload_of(e);
    DrugLibrary l;
    l.hospital = s.placement.holder;
    if (payload) {
      l.version = text_of(*payload, "version");
      CUSTOS_ASSIGN_OR_RETURN(l.sha256, digest_of(*payload, "sha256"));
    }
    l.index = e.index;
    l.since_ms = e.registered_ms;
    s.hospital_library = std::move(l);
  }
  s.now = std::move(*d);
  return s;
}

// --- Advisory exposure ---

// "i/<maker>/<version>/<device>": versions hold no '/' (devices.cc refuses
// them), so the device id is everything after the version.
Result<std::optional<Device>> DeviceQueries::installed_device(ByteView key,
                                                              size_t maker_prefix) const {
  const std::string rest(key.begin() + static_cast<std::ptrdiff_t>(maker_prefix), key.end());
  const size_t slash = rest.find('/');
  if (slash == std::string::npos) return std::optional<Device>();
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Device> d,
                          load<Device>(device_key(rest.substr(slash + 1))));
  if (d && d->firmware && d->firmware->version == rest.substr(0, slash)) return d;
  return std::optional<Device>();  // a stale key would be a bug; skip it
}

Result<Exposure> DeviceQueries::exposure(std::string_view advisory_id, const std::string& cursor,
                                         size_t limit) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Advisory> adv, load<Advisory>(advisory_key(advisory_id)));
  if (!adv)
    return error(ErrorCode::kNotFound,
                 "advisory '" + std::string(advisory_id) + "' is not published");
  auto start = from_hex(cursor);
  if (!start.ok() || start->size() > kCursorBytesMax)
    return error(ErrorCode::kInvalidArgument, "'cursor' is not one this query returned");
  limit = page_limit(limit, kExposurePageMax);
  const size_t maker_prefix = std::string_view("i/").size() + adv->maker.size() + 1;
  std::map<std::string, ExposureGroup> groups;
  Exposure out;
  Status failure;
  size_t examined = 0;
  // One prefix scan per affected version, in key order (the cursor's order).
  std::vector<Bytes> scans;
  for (const auto& v : adv->versions) scans.push_back(installed_firmware_prefix(adv->maker, v));
  std::sort(scans.begin(), scans.end());
  for (const Bytes& prefix : scans) {
    const Bytes from = start->empty() ? prefix : after(*start);
    Status s = ledger_.scan_rule_records(prefix, from, [&](ByteView key, ByteView) {
      if (out.device_count == limit || examined == kExposureScanMax) {
        out.next_cursor = to_hex(*start);
        return false;
      }
      ++examined;
      *start = Bytes(key.begin(), key.end());
      auto d = installed_device(key, maker_prefix);
      if (!d.ok()) {
        failure = d.status();
        return false;
      }
      const std::optional<Device>& dev = *d;
      if (dev && dev->status == DeviceStatus::kActive &&
          adv->affects(dev->model, dev->firmware->version)) {
        groups[dev->holder].devices.push_back(*dev);
        ++out.device_count;
      }
      return true;
    });
    CUSTOS_RETURN_IF_ERROR(s);
    CUSTOS_RETURN_IF_ERROR(failure);
    if (out.next_cursor) break;
  }
  for (auto& [holder, group] : groups) {
    group.holder = holder;
    CUSTOS_ASSIGN_OR_RETURN(group.org, load<Org>(org_key(holder)));
    out.groups.push_back(std::move(group));
  }
  out.advisory = std::move(*adv);
  return out;
}

// --- Listings ---

namespace {
// Scans records under `prefix` from after `cursor` (the id part of the last
// key of the previous page), keeping those `keep` accepts, at most `limit`,
// examining at most kListScanMax.
template <typename T, typename Keep>
Result<Page<T>> list_records(const ledger::Ledger& l, const Bytes& prefix,
                             const std::string& cursor, size_t limit, Keep keep) {
  Page<T> page;
  limit = page_limit(limit, kListPageMax);
  Bytes from = prefix;
  if (!cursor.empty()) {
    from.insert(from.end(), cursor.begin(), cursor.end());
    from = after(std::move(from));
  }
  size_t examined = 0;
  std::string last;
  Status failure;
  Status s = l.scan_rule_records(prefix, from, [&](ByteView key, ByteView value) {
    if (page.items.size() == limit || examined == kListScanMax) {
      page.next_cursor = last;
      return false;
    }
    ++examined;
    last.assign(key.begin() + static_cast<std::ptrdiff_t>(prefix.size()), key.end());
    auto v = T::decode(value);
    if (!v.ok()) {
      failure = v.status();
      return false;
    }
    if (keep(*v)) page.items.push_back(std::move(v).value());
    return true;
  });
  CUSTOS_RETURN_IF_ERROR(s);
  CUSTOS_RETURN_IF_ERROR(failure);
  return page;
}
}  // namespace

Result<Page<Device>> DeviceQueries::devices(const DeviceFilter& f) const {
  return list_records<Device>(ledger_, device_key(""), f.cursor, f.limit, [&](const Device& d) {
    return (!f.holder || d.holder == *f.holder) && (!f.maker || d.maker == *f.maker) &&
           (!f.device_class || d.device_class == *f.device_class);
  });
}

Result<Page<Advisory>> DeviceQueries::advisories(const std::optional<std::string>& maker,
                                                 const std::string& cursor, size_t limit) const {
  return list_records<Advisory>(ledger_, advisory_key(""), cursor, limit,
                                [&](const Advisory& a) { return !maker || a.maker == *maker; });
}

Result<Page<FirmwareRelease>> DeviceQueries::releases(std::string_view maker,
                                                      const std::string& cursor,
                                                      size_t limit) const {
  Bytes prefix = firmware_key(maker, "");  // "f/<maker>/"
  return list_records<FirmwareRelease>(ledger_, prefix, cursor, limit,
                                       [](const FirmwareRelease&) { return true; });
}

Result<ReleaseView> DeviceQueries::release(std::string_view maker, std::string_view version) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<FirmwareRelease> rel,
                          load<FirmwareRelease>(firmware_key(maker, version)));
  if (!rel)
    return error(ErrorCode::kNotFound, "'" + std::string(maker) + "' has released no version '" +
                                           std::string(version) + "'");
  ReleaseView v;
  CUSTOS_ASSIGN_OR_RETURN(v.released, evidence(rel->index));
  CUSTOS_ASSIGN_OR_RETURN(v.advisories, advisories_naming(maker, version));
  Status s =
      ledger_.scan_rule_records(installed_firmware_prefix(maker, version), [&](ByteView, ByteView) {
        if (v.devices_running == kRunningCountMax) {
          v.devices_running_capped = true;
          return false;
        }
        ++v.devices_running;
        return true;
      });
  CUSTOS_RETURN_IF_ERROR(s);
  v.release = std::move(*rel);
  return v;
}

Result<AdvisoryView> DeviceQueries::advisory(std::string_view id) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Advisory> adv, load<Advisory>(advisory_key(id)));
  if (!adv)
    return error(ErrorCode::kNotFound, "advisory '" + std::string(id) + "' is not published");
  AdvisoryView v;
  CUSTOS_ASSIGN_OR_RETURN(v.published, evidence(adv->index));
  if (!adv->fixed_in.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(v.fix, load<FirmwareRelease>(firmware_key(adv->maker, adv->fixed_in)));
  }
  v.advisory = std::move(*adv);
  return v;
}

Result<LibraryView> DeviceQueries::drug_library(std::string_view hospital) const {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<DrugLibrary> current,
                          load<DrugLibrary>(drug_library_key(hospital)));
  if (!current)
    return error(ErrorCode::kNotFound,
                 "'" + std::string(hospital) + "' has released no drug library");
  LibraryView v;
  ledger::Query q;
  q.ref = ref("drug-library", hospital);
  q.descending = true;
  q.limit = kLibraryHistoryMax;
  CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, ledger_.query(q));
  for (const auto& e : page.entries) {
    if (e.header.content_type != kTypeDrugLibrary) continue;
    auto payload = payload_of(e);
    if (!payload) continue;
    DrugLibrary l;
    l.hospital = std::string(hospital);
    l.version = text_of(*payload, "version");
    CUSTOS_ASSIGN_OR_RETURN(l.sha256, digest_of(*payload, "sha256"));
    l.index = e.index;
    l.since_ms = e.registered_ms;
    v.history.emplace_back(std::move(l), evidence(e));
  }
  v.current = std::move(*current);
  return v;
}

}  // namespace custos::domain
