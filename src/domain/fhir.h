// FHIR R4 JSON for ledger content (docs/domain.md, "FHIR exports"): pure
// functions from ledger entries and domain records to resources, for
// regulators, auditors and hospital systems. Nothing here reads storage or
// a clock; the same inputs give the same JSON.
//
// Ledger things that FHIR has no resource for here (keys, organisations,
// patients, entries) are logical references: an identifier in one of the
// urn:custos systems below, with a display text. A patient is only ever its
// pseudonym.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/model.h"
#include "ledger/ledger.h"

namespace custos::domain::fhir {

using Json = nlohmann::json;

// Identifier systems.
inline constexpr const char* kSystemEntry = "urn:custos:entry";  // entry id (hex)
inline constexpr const char* kSystemKid = "urn:custos:kid";      // signing key id (hex)
inline constexpr const char* kSystemOrg = "urn:custos:org";
inline constexpr const char* kSystemDevice = "urn:custos:device";
inline constexpr const char* kSystemNode = "urn:custos:node";
inline constexpr const char* kSystemPseudonym = "urn:custos:pseudonym";
inline constexpr const char* kSystemOrder = "urn:custos:order";
inline constexpr const char* kSystemRecord = "urn:custos:record";  // "<pseudonym>/<record id>"
inline constexpr const char* kSystemRef = "urn:custos:ref";        // any other ref "kind:id"
// A person named by a reader's organisation: "urn:custos:user:<org>".
inline constexpr const char* kSystemUserPrefix = "urn:custos:user:";

inline constexpr const char* kGs1DiIssuer = "http://hl7.org/fhir/NamingSystem/gs1-di";
inline constexpr const char* kMediaTypeFhirJson = "application/fhir+json";

// Who signed an entry, as the key registry knows it.
struct Signer {
  Hash256 kid{};
  std::string name;    // the key's registered name
  std::string org;     // organisation id; empty for none
  std::string device;  // the device id when the key is a device's own
};

// The node answering (AuditEvent.source, the server agent).
struct Source {
  std::string node;
  std::string consortium;
};

// One step of an infusion: an entry with ref order:<id> and its signer.
struct Step {
  ledger::EntryInfo entry;
  Signer signer;
};

// A FHIR id ([A-Za-z0-9-.]{1,64}) for a custos id: the id itself when it
// fits, otherwise the hex SHA-256 of it.
std::string resource_id(std::string_view id);
// FHIR instant / dateTime from milliseconds since 1970 (UTC, with ms).
std::string instant(uint64_t ms);

// Device from the device record; the organisations' display names may be empty.
Json device(const Device& d, std::string_view maker_name, std::string_view holder_name);

// An IHE BALP-shaped AuditEvent for one entry: a record-access is a read
// (R), a record-erasure a delete (D), every other registration a create
// (C). Agents: the user (requestor), the client (the signer's system,
// DICOM 110153 Source Role ID) and the server (this node, 110152
// Destination Role ID); entities: the entry, the patient when one is
// concerned, the record read, the devices named.
Json audit_event(const ledger::EntryInfo& e, const Signer& signer, const Source& source);

// Provenance of one entry: its targets (what it is about), the signer as
// author on behalf of its organisation, and the COSE_Sign1 statement bytes
// as the signature.
Json provenance(const ledger::EntryInfo& e, const Signer& signer);

// MedicationRequest from an order; the prescriber as the key registry knows it.
Json medication_request(const MedicationOrder& order, const Signer& prescriber);

// MedicationAdministration from an order and the entries about it (pump
// programming, device events) in log order. Any of them may be missing: the
// status and times come from what is there.
Json medication_administration(const MedicationOrder& order, const std::vector<Step>& steps);

// A searchset Bundle of `resources` (search mode "match"); `self` and
// `next` are the request's and the next page's URLs.
Json searchset(const std::vector<Json>& resources, const std::string& self,
               const std::optional<std::string>& next);

}  // namespace custos::domain::fhir
