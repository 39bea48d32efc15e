// Read side of device accountability (docs/domain.md, "Devices, firmware and
// advisories"): a device's record and timeline, what it ran and where it was
// at a given time, which devices an advisory exposes, and listings of
// devices, advisories, firmware releases and drug libraries.
//
// Everything here reads through ledger::Ledger's public reads (rule records,
// index queries, entries, keys) as of the newest written block, so it is safe
// from any thread. Every answer is an index scan or a bounded prefix scan of
// the domain records; nothing walks the log. Limits below bound each page.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/model.h"
#include "ledger/ledger.h"

namespace custos::domain {

inline constexpr size_t kTimelinePageDefault = 100;
inline constexpr size_t kTimelinePageMax = 500;
inline constexpr size_t kListPageDefault = 100;
inline constexpr size_t kListPageMax = 1000;
// Records examined per list page (a filtered listing may return a short page
// with a cursor, like GET /v1/entries).
inline constexpr size_t kListScanMax = 10000;
inline constexpr size_t kExposurePageDefault = 1000;
inline constexpr size_t kExposurePageMax = 10000;
// Installations examined per exposure page (devices on an affected version
// but another model count too); a page may end short, with a cursor.
inline constexpr size_t kExposureScanMax = 4 * kExposurePageMax;
// Custody and installation entries examined (newest first) to find where a
// device was at a time; a device changes hands far fewer times than this.
inline constexpr size_t kPlacementScanMax = 1000;
inline constexpr size_t kLibraryHistoryMax = 20;
// Devices counted as running one firmware release (GET /v1/firmware/m/v).
inline constexpr size_t kRunningCountMax = 10000;

// Who signed an entry, as the key registry knows the key now.
struct SignerInfo {
  Hash256 kid{};
  bool known = false;  // false only if the key record is missing
  std::string name;
  uint32_t roles = 0;
  std::string org;
  bool revoked = false;
};

struct TimelineItem {
  ledger::EntryInfo entry;
  SignerInfo signer;
  std::string kind;     // the content type's short name: "device-event", "firmware-install"
  std::string summary;  // what happened, in words: "alarm occlusion-downstream (high)"
};

struct TimelineQuery {
  std::optional<uint64_t> from_ms;  // registration time, inclusive
  std::optional<uint64_t> to_ms;    // registration time, exclusive
  uint64_t cursor = 0;              // as ledger::Query::cursor
  size_t limit = kTimelinePageDefault;
  bool descending = false;  // newest first
};

struct TimelinePage {
  std::vector<TimelineItem> items;
  std::optional<uint64_t> next_cursor;
};

struct DeviceView {
  Device device;
  std::optional<SignerInfo> key;           // the device's own key (absent if unknown)
  std::optional<FirmwareRelease> release;  // the maker's release of its firmware, if any
  std::vector<Advisory> advisories;        // advisories its current firmware is exposed to
};

// One entry that explains a fact: where it is in the log, when, who signed.
struct Evidence {
  Hash256 entry{};
  uint64_t index = 0;
  uint64_t ms = 0;
  SignerInfo signer;
};

struct FirmwareAtTime {
  std::string version;
  Hash256 image_sha256{};
  bool from_registration = false;  // reported in the registration, not by an install
  Evidence installed;
  std::vector<std::string> flags;            // flags raised on that entry when it was registered
  std::optional<FirmwareRelease> release;    // the maker's release of that version, if any (now)
  bool released_at_time = false;             // the release was on the ledger at T
  bool image_matches = false;                // the installed image is the released one
  bool approved_for_model = false;           // the release lists the device's model
  std::vector<Advisory> advisories_at_time;  // published at or before T
  std::vector<Advisory> advisories_now;
};

struct PlacementAtTime {
  std::string holder;
  Evidence holder_since;  // the registration or custody transfer
  std::string care_area;  // empty when not installed at T
  std::string location;
  std::optional<Evidence> installed;
  bool decommissioned = false;
  std::optional<Evidence> decommissioned_by;
};

struct ReportedLibrary {
  std::string version;
  Evidence reported;  // the device event that named it
};

struct DeviceStateAtTime {
  std::string device;
  uint64_t at_ms = 0;
  uint64_t log_size_at = 0;  // entries registered at or before T
  Device now;                // the record today (model, maker, class, UDI)
  PlacementAtTime placement;
  std::optional<FirmwareAtTime> firmware;
  std::optional<ReportedLibrary> reported_library;
  std::optional<DrugLibrary> hospital_library;  // the holder's current library at T
};

struct ExposureGroup {
  std::string holder;
  std::optional<Org> org;  // the holder's record (absent only if it is missing)
  std::vector<Device> devices;
};

struct Exposure {
  Advisory advisory;
  std::vector<ExposureGroup> groups;  // by holder id
  size_t device_count = 0;            // devices in this page
  std::optional<std::string> next_cursor;
};

struct DeviceFilter {
  std::optional<std::string> holder;
  std::optional<std::string> maker;
  std::optional<std::string> device_class;
  std::string cursor;  // the last device id of the previous page
  size_t limit = kListPageDefault;
};

template <typename T>
struct Page {
  std::vector<T> items;
  std::optional<std::string> next_cursor;  // absent on the last page
};

struct ReleaseView {
  FirmwareRelease release;
  Evidence released;
  std::vector<Advisory> advisories;  // advisories naming this version
  size_t devices_running = 0;        // at most kRunningCountMax
  bool devices_running_capped = false;
};

struct AdvisoryView {
  Advisory advisory;
  Evidence published;
  std::optional<FirmwareRelease> fix;  // the release named by fixed_in, if released
};

struct LibraryView {
  DrugLibrary current;
  std::vector<std::pair<DrugLibrary, Evidence>>
      history;  // newest first, at most kLibraryHistoryMax
};

class DeviceQueries {
 public:
  explicit DeviceQueries(const ledger::Ledger& ledger) : ledger_(ledger) {}

  // kNotFound when the device is not registered.
  Result<DeviceView> device(std::string_view id) const;
  // Entries that concern the device (ref "device:<id>"), in log order or
  // newest first, within a registration time range. kNotFound for an
  // unknown device.
  Result<TimelinePage> timeline(std::string_view id, const TimelineQuery& q) const;
  // The device as of the entries registered at or before at_ms. kNotFound
  // when the device is unknown or was registered after at_ms.
  Result<DeviceStateAtTime> state_at(std::string_view id, uint64_t at_ms) const;
  // Devices running a version an advisory names, on a model it covers,
  // grouped by holder. The cursor is opaque (from the previous page).
  // kNotFound for an unknown advisory, kInvalidArgument for a bad cursor.
  Result<Exposure> exposure(std::string_view advisory_id, const std::string& cursor,
                            size_t limit) const;
  // Advisories naming `d`'s current firmware version and covering its model.
  Result<std::vector<Advisory>> advisories_for(const Device& d) const;

  Result<Page<Device>> devices(const DeviceFilter& filter) const;
  Result<Page<Advisory>> advisories(const std::optional<std::string>& maker,
                                    const std::string& cursor, size_t limit) const;
  Result<Page<FirmwareRelease>> releases(std::string_view maker, const std::string& cursor,
                                         size_t limit) const;
  Result<ReleaseView> release(std::string_view maker, std::string_view version) const;
  Result<AdvisoryView> advisory(std::string_view id) const;
  // kNotFound when the hospital has released no library.
  Result<LibraryView> drug_library(std::string_view hospital) const;

  // The content type's short name ("device-event" for
  // application/vnd.custos.device-event+cbor); the type itself otherwise.
  static std::string kind_of(std::string_view content_type);

 private:
  template <typename T>
  Result<std::optional<T>> load(const Bytes& key) const;
  SignerInfo signer(const Hash256& kid) const;
  Result<Evidence> evidence(uint64_t index) const;
  Evidence evidence(const ledger::EntryInfo& e) const;
  // Entries below `bound` (an exclusive log index, > 0) with `ref`, newest
  // first; pass the page's next_cursor as the bound of the next page.
  Result<ledger::QueryPage> newest(const std::string& ref, uint64_t bound, size_t limit) const;
  Result<PlacementAtTime> placement_at(const Device& d, uint64_t bound) const;
  Result<std::optional<FirmwareAtTime>> firmware_at(const Device& d, uint64_t bound) const;
  // The device an "i/<maker>/<version>/<device>" key stands for, if it runs
  // that version now (maker_prefix: the length of "i/<maker>/").
  Result<std::optional<Device>> installed_device(ByteView key, size_t maker_prefix) const;
  Result<std::vector<Advisory>> advisories_naming(std::string_view maker,
                                                  std::string_view version) const;

  const ledger::Ledger& ledger_;
};

}  // namespace custos::domain
