// Patient data on the ledger (docs/domain.md, "Patient data: pseudonyms,
// off-ledger content, erasure"). A patient appears only as a pseudonym; the
// clinical content itself lives off the ledger in each node's vault
// (domain/vault.h). The ledger holds:
//  - clinical-record: a clinician of a hospital commits to one record's
//    content: SHA-256(salt || content), the 32-byte salt kept in the vault;
//  - record-access: whoever reads a record says which, why (HL7 v3
//    PurposeOfUse) and for whom; the read is served only after it is logged;
//  - record-erasure: an org-admin of a hospital that recorded content for the
//    patient has the patient's content destroyed (crypto-shredding). Nothing
//    is removed from the ledger: every proof stays valid, and a commitment
//    without its salt and content reveals nothing.
//
// The statements are parsed by one function each, used by both stages of the
// rules and by the HTTP routes, so all three read the same fields.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "cose/statement.h"

namespace custos::domain {

// Records of one patient the ledger accepts (and a vault stores).
inline constexpr uint64_t kRecordsPerPatientMax = 4096;
// Hospitals named in one patient's record (those whose org-admin may erase).
inline constexpr size_t kHospitalsPerPatientMax = 64;
// Media type of a record's content, e.g. "application/fhir+json".
inline constexpr size_t kMediaTypeBytesMax = 128;
inline constexpr size_t kSaltBytes = 32;

// HL7 v3 PurposeOfUse codes a record access may give
// (http://terminology.hl7.org/CodeSystem/v3-ActReason).
const std::vector<std::string_view>& purpose_of_use_codes();
// Reasons for an erasure: a fixed vocabulary, so no free text about a
// patient reaches the ledger.
const std::vector<std::string_view>& erasure_reasons();

// SHA-256(salt || content): the commitment a clinical-record statement holds.
Hash256 record_commitment(ByteView salt, ByteView content);

// --- Statement payloads ---

// {"patient": pseudonym, "record": id, "content_type": media type,
//  "commitment": bstr 32}
struct ClinicalRecordStatement {
  std::string patient;
  std::string record;
  std::string content_type;
  Hash256 commitment{};
};
// {"patient": pseudonym, "record": id, "purpose": PurposeOfUse code,
//  "who": id of the person reading (a user id of the reader's organisation)}
struct RecordAccessStatement {
  std::string patient;
  std::string record;
  std::string purpose;
  std::string who;
};
// {"patient": pseudonym, "reason": one of erasure_reasons()}
struct RecordErasureStatement {
  std::string patient;
  std::string reason;
};

// kMalformed naming the field and rule.
Result<ClinicalRecordStatement> parse_clinical_record(const cose::Statement& statement);
Result<RecordAccessStatement> parse_record_access(const cose::Statement& statement);
Result<RecordErasureStatement> parse_record_erasure(const cose::Statement& statement);
// A media type "type/subtype" in lowercase (RFC 6838 token characters).
Status check_media_type(std::string_view text);

// --- Records (Column::kDomain) ---

Bytes patient_key(std::string_view patient);  // "p/<pseudonym>"
// "r/<pseudonym>/<record>"; the prefix "r/<pseudonym>/" lists a patient's records.
Bytes clinical_record_key(std::string_view patient, std::string_view record);
Bytes clinical_record_prefix(std::string_view patient);

struct PatientErasure {
  uint64_t index = 0;  // log index of the record-erasure entry
  uint64_t erased_ms = 0;
  std::string org;  // hospital whose org-admin signed it
  std::string reason;
};

struct PatientState {
  std::string patient;
  uint64_t records = 0;
  std::vector<std::string> hospitals;  // that recorded content, in order of first record
  std::optional<PatientErasure> erasure;

  Bytes encode() const;
  static Result<PatientState> decode(ByteView bytes);
};

struct ClinicalRecord {
  std::string patient;
  std::string record;
  std::string content_type;
  Hash256 commitment{};
  std::string hospital;  // org id of the signer
  Hash256 author{};      // kid of the clinician
  uint64_t index = 0;    // log index of the clinical-record entry
  uint64_t recorded_ms = 0;

  Bytes encode() const;
  static Result<ClinicalRecord> decode(ByteView bytes);
};

}  // namespace custos::domain
