// Patient data: clinical-record, record-access and record-erasure
// (domain/clinical.h; docs/domain.md, "Patient data").
#include "domain/clinical.h"

#include <algorithm>

#include "crypto/hash.h"
#include "domain/rules.h"
#include "ledger/policy.h"

namespace custos::domain {

using cbor::Type;
using cbor::Value;

namespace {

using ledger::kRoleAuditor;
using ledger::kRoleNurse;
using ledger::kRoleOrgAdmin;
using ledger::kRolePharmacist;
using ledger::kRolePrescriber;

// Arrays, not pointers, so that they can be template arguments
// (check_patient_statement).
constexpr char kWhatRecord[] = "clinical record";
constexpr char kWhatAccess[] = "record access";
constexpr char kWhatErasure[] = "record erasure";

// Clinicians who write records; everyone who may read one.
constexpr uint32_t kClinicians = kRolePrescriber | kRoleNurse | kRolePharmacist;
constexpr uint32_t kReaders = kClinicians | kRoleAuditor | kRoleOrgAdmin;
constexpr uint32_t kReaderOrgs = kOrgHospital | kOrgHie | kOrgRegulator | kOrgPharmacy;
// "pseudonym:" and at most 64 hex digits (payload.h).
constexpr size_t kPseudonymBytesMax = kPseudonymPrefix.size() + 64;

// RFC 6838 section 4.2: type and subtype names are at most 127 characters;
// we keep both to 64 so the whole fits kMediaTypeBytesMax.
constexpr size_t kMediaTypeTokenBytesMax = 63;

bool token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$&^_.+-").find(c) != std::string_view::npos;
}

Result<std::string> pseudonym(PayloadReader& p) {
  CUSTOS_ASSIGN_OR_RETURN(std::string patient, p.text("patient", kPseudonymBytesMax));
  if (Status s = check_pseudonym(patient); !s.ok()) return p.fail("patient", s.message());
  return patient;
}

// The CWT subject of a patient statement is its pseudonym: the header is
// public too, and nothing else may name the patient there.
Status check_subject(const cose::Statement& st, const std::string& patient, const char* what) {
  if (st.header.subject == patient) return Status();
  return error(ErrorCode::kMalformed, std::string(what) +
                                          ": the CWT subject (sub) must be the patient's "
                                          "pseudonym '" +
                                          patient + "'");
}

// The stage-1 check of every patient statement: its payload parses, and the
// CWT subject is the patient's pseudonym.
template <auto parse, const char* what>
Status check_patient_statement(const cose::Statement& st, const ledger::KeyState&) {
  CUSTOS_ASSIGN_OR_RETURN(auto parsed, parse(st));
  return check_subject(st, parsed.patient, what);
}

// --- Records ---

Value text_list(const std::vector<std::string>& items) {
  cbor::Array a;
  for (const auto& t : items) a.push_back(cbor::text(t));
  return Value::array(std::move(a));
}

void add(cbor::Map& m, std::string_view k, Value v) {
  m.emplace_back(cbor::text(k), std::move(v));
}

Bytes text_key(char kind, std::string_view a, std::string_view b = {}, bool trailing = false) {
  std::string k{kind, '/'};
  k += a;
  if (!b.empty() || trailing) k += '/';
  k += b;
  return Bytes(k.begin(), k.end());
}

// --- clinical-record ---

Result<PatientState> patient_state(Apply& a, const std::string& patient) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> bytes, a.state.get(patient_key(patient)));
  if (!bytes) {
    PatientState fresh;
    fresh.patient = patient;
    return fresh;
  }
  return PatientState::decode(*bytes);
}

Status refuse_if_erased(Apply& a, const PatientState& p, const char* what) {
  if (!p.erasure) return Status();
  return a.refuse(ErrorCode::kConflict, std::string(what) + ": the content of patient '" +
                                            p.patient + "' was erased (log index " +
                                            std::to_string(p.erasure->index) + ")");
}

Status apply_record(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(ClinicalRecordStatement r, parse_clinical_record(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(PatientState p, patient_state(a, r.patient));
  CUSTOS_RETURN_IF_ERROR(refuse_if_erased(a, p, kWhatRecord));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> existing,
                          a.state.get(clinical_record_key(r.patient, r.record)));
  if (existing) {
    return a.refuse(ErrorCode::kConflict, std::string(kWhatRecord) + ": field 'record': '" +
                                              r.record + "' of patient '" + r.patient +
                                              "' is already recorded");
  }
  if (p.records >= kRecordsPerPatientMax) {
    return a.refuse(ErrorCode::kTooLarge, std::string(kWhatRecord) + ": patient '" + r.patient +
                                              "' already has " +
                                              std::to_string(kRecordsPerPatientMax) + " records");
  }
  const std::string& hospital = a.signer_org->id;
  if (std::find(p.hospitals.begin(), p.hospitals.end(), hospital) == p.hospitals.end()) {
    if (p.hospitals.size() >= kHospitalsPerPatientMax) {
      return a.refuse(ErrorCode::kTooLarge,
                      std::string(kWhatRecord) + ": patient '" + r.patient + "' has records of " +
                          std::to_string(kHospitalsPerPatientMax) + " hospitals already");
    }
    p.hospitals.push_back(hospital);
  }
  ++p.records;
  ClinicalRecord rec{r.patient,    r.record,   r.content_type,
                     r.commitment, hospital,   a.statement.header.kid,
                     a.index(),    a.time_ms()};
  a.put(clinical_record_key(r.patient, r.record), rec.encode());
  a.put(patient_key(r.patient), p.encode());
  a.add_ref("patient", r.patient);
  a.add_ref("org", hospital);
  return Status();
}

// --- record-access ---

Status apply_access(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(RecordAccessStatement r, parse_record_access(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> rec,
                          a.state.get(clinical_record_key(r.patient, r.record)));
  if (!rec) {
    return a.refuse(ErrorCode::kNotFound, std::string(kWhatAccess) + ": field 'record': '" +
                                              r.record + "' of patient '" + r.patient +
                                              "' is not recorded");
  }
  CUSTOS_ASSIGN_OR_RETURN(PatientState p, patient_state(a, r.patient));
  CUSTOS_RETURN_IF_ERROR(refuse_if_erased(a, p, kWhatAccess));
  a.add_ref("patient", r.patient);
  a.add_ref("org", a.signer_org->id);
  return Status();
}

// --- record-erasure ---

Status apply_erasure(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(RecordErasureStatement r, parse_record_erasure(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Bytes> bytes, a.state.get(patient_key(r.patient)));
  if (!bytes) {
    return a.refuse(ErrorCode::kNotFound, std::string(kWhatErasure) + ": patient '" + r.patient +
                                              "' has no clinical records");
  }
  CUSTOS_ASSIGN_OR_RETURN(PatientState p, PatientState::decode(*bytes));
  CUSTOS_RETURN_IF_ERROR(refuse_if_erased(a, p, kWhatErasure));
  const std::string& org = a.signer_org->id;
  if (std::find(p.hospitals.begin(), p.hospitals.end(), org) == p.hospitals.end()) {
    return a.refuse(ErrorCode::kPolicy,
                    std::string(kWhatErasure) + ": '" + org +
                        "' recorded no content for patient '" + r.patient +
                        "'; only an org-admin of a hospital that did may erase it");
  }
  p.erasure = PatientErasure{a.index(), a.time_ms(), org, r.reason};
  a.put(patient_key(r.patient), p.encode());
  a.add_ref("patient", r.patient);
  a.add_ref("org", org);
  return Status();
}

constexpr TypeRule kRecordRules[] = {
    {kTypeClinicalRecord, kWhatRecord, kClinicians, kOrgHospital,
     check_patient_statement<parse_clinical_record, kWhatRecord>, apply_record},
    {kTypeRecordAccess, kWhatAccess, kReaders, kReaderOrgs,
     check_patient_statement<parse_record_access, kWhatAccess>, apply_access},
    {kTypeRecordErasure, kWhatErasure, kRoleOrgAdmin, kOrgHospital,
     check_patient_statement<parse_record_erasure, kWhatErasure>, apply_erasure},
};

}  // namespace

std::span<const TypeRule> record_rules() {
  return kRecordRules;
}

const std::vector<std::string_view>& purpose_of_use_codes() {
  static const std::vector<std::string_view> kCodes = {
      "TREAT",  "ETREAT",  "BTG",      "CAREMGT",   "COC",    "CLINTRCH", "HRESCH",   "PUBHLTH",
      "HPAYMT", "HOPERAT", "HQUALIMP", "HSYSADMIN", "HLEGAL", "PATRQT",   "RECORDMGT"};
  return kCodes;
}

const std::vector<std::string_view>& erasure_reasons() {
  static const std::vector<std::string_view> kReasons = {
      "patient-request",    // GDPR Art. 17 right to erasure
      "consent-withdrawn",  // GDPR Art. 17(1)(b)
      "retention-expired",  // kept longer than the law requires
      "unlawful-processing", "legal-order",
  };
  return kReasons;
}

Hash256 record_commitment(ByteView salt, ByteView content) {
  crypto::Sha256 h;
  h.update(salt);
  h.update(content);
  return h.finish();
}

Status check_media_type(std::string_view t) {
  const size_t slash = t.find('/');
  auto token = [](std::string_view s) {
    const bool alnum_first =
        !s.empty() && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'));
    return alnum_first && s.size() <= kMediaTypeTokenBytesMax &&
           std::all_of(s.begin(), s.end(), token_char);
  };
  if (slash == std::string_view::npos || !token(t.substr(0, slash)) ||
      !token(t.substr(slash + 1))) {
    return error(ErrorCode::kMalformed,
                 "must be a media type 'type/subtype' in lowercase, e.g. application/fhir+json");
  }
  return Status();
}

Result<ClinicalRecordStatement> parse_clinical_record(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatRecord));
  ClinicalRecordStatement r;
  CUSTOS_ASSIGN_OR_RETURN(r.patient, pseudonym(p));
  CUSTOS_ASSIGN_OR_RETURN(r.record, p.id("record"));
  CUSTOS_ASSIGN_OR_RETURN(r.content_type, p.text("content_type", kMediaTypeBytesMax));
  if (Status s = check_media_type(r.content_type); !s.ok())
    return p.fail("content_type", s.message());
  CUSTOS_ASSIGN_OR_RETURN(r.commitment, p.digest("commitment"));
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return r;
}

Result<RecordAccessStatement> parse_record_access(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatAccess));
  RecordAccessStatement r;
  CUSTOS_ASSIGN_OR_RETURN(r.patient, pseudonym(p));
  CUSTOS_ASSIGN_OR_RETURN(r.record, p.id("record"));
  CUSTOS_ASSIGN_OR_RETURN(r.purpose, p.one_of("purpose", purpose_of_use_codes()));
  CUSTOS_ASSIGN_OR_RETURN(r.who, p.id("who"));
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return r;
}

Result<RecordErasureStatement> parse_record_erasure(const cose::Statement& st) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(st.payload(), kWhatErasure));
  RecordErasureStatement r;
  CUSTOS_ASSIGN_OR_RETURN(r.patient, pseudonym(p));
  CUSTOS_ASSIGN_OR_RETURN(r.reason, p.one_of("reason", erasure_reasons()));
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return r;
}

Bytes patient_key(std::string_view patient) {
  return text_key('p', patient);
}

Bytes clinical_record_key(std::string_view patient, std::string_view record) {
  return text_key('r', patient, record, true);
}

Bytes clinical_record_prefix(std::string_view patient) {
  return text_key('r', patient, {}, true);
}

Bytes PatientState::encode() const {
  cbor::Map m;
  add(m, "patient", cbor::text(patient));
  add(m, "records", Value::uint(records));
  add(m, "hospitals", text_list(hospitals));
  if (erasure) {
    cbor::Map e;
    add(e, "index", Value::uint(erasure->index));
    add(e, "erased_ms", Value::uint(erasure->erased_ms));
    add(e, "org", cbor::text(erasure->org));
    add(e, "reason", cbor::text(erasure->reason));
    add(m, "erasure", Value::map(std::move(e)));
  }
  return cbor::encode(Value::map(std::move(m)));
}

Result<PatientState> PatientState::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "patient"));
  PatientState p;
  p.patient = text_of(v, "patient");
  p.records = uint_of(v, "records");
  p.hospitals = texts_of(v, "hospitals");
  if (const Value* e = v.find("erasure"); e && e->is(Type::kMap)) {
    p.erasure = PatientErasure{uint_of(*e, "index"), uint_of(*e, "erased_ms"), text_of(*e, "org"),
                               text_of(*e, "reason")};
  }
  return p;
}

Bytes ClinicalRecord::encode() const {
  cbor::Map m;
  add(m, "patient", cbor::text(patient));
  add(m, "record", cbor::text(record));
  add(m, "content_type", cbor::text(content_type));
  add(m, "commitment", digest_value(commitment));
  add(m, "hospital", cbor::text(hospital));
  add(m, "author", digest_value(author));
  add(m, "index", Value::uint(index));
  add(m, "recorded_ms", Value::uint(recorded_ms));
  return cbor::encode(Value::map(std::move(m)));
}

Result<ClinicalRecord> ClinicalRecord::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_record(bytes, "clinical"));
  ClinicalRecord r;
  r.patient = text_of(v, "patient");
  r.record = text_of(v, "record");
  r.content_type = text_of(v, "content_type");
  CUSTOS_ASSIGN_OR_RETURN(r.commitment, digest_of(v, "commitment"));
  r.hospital = text_of(v, "hospital");
  CUSTOS_ASSIGN_OR_RETURN(r.author, digest_of(v, "author"));
  r.index = uint_of(v, "index");
  r.recorded_ms = uint_of(v, "recorded_ms");
  return r;
}

}  // namespace custos::domain
