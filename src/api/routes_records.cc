// Off-ledger clinical content (docs/api.md, "Patient records"):
//   POST /v1/records                      a clinical-record statement with its content and salt
//   POST /v1/records/access               a record-access statement -> the content
//   POST /v1/records/erasure              a record-erasure statement -> the patient's key destroyed
//   GET  /v1/patients/{pseudonym}         the patient's records and erasure, from the ledger
//   GET  /v1/patients/{pseudonym}/accesses who read what, when and why, from the ledger
//
// Order of operations, so a crash at any point leaves nothing served that
// should not be: a statement is registered (committed, quorum-signed) before
// its effect on the vault. A record registered but not stored is stored by
// the client's retry (the statement is then "already registered"); an
// erasure registered but not applied is applied by the node's sweep
// (domain::VaultSweeper) at its next start, and by every request here
// before it looks at the vault. Content is returned only to the request
// whose access statement it registered: statements are public (GET
// /v1/entries/{id}), so replaying one must not read the record again.
#include "api/domain_routes.h"
#include "api/http_util.h"
#include "domain/clinical.h"
#include "domain/model.h"
#include "domain/payload.h"
#include "domain/vault.h"

namespace custos::api {

using nlohmann::json;

namespace {

// A clinical-record statement, the content and the salt, in CBOR framing.
constexpr size_t kRecordBodyBytesMax =
    limits::kStatementBytesMax + domain::kVaultContentBytesMax + 1024;

Response gone(const std::string& detail) {
  Response r = problem(410, "gone", detail);
  json body = json::parse(r.body);
  body["title"] = "Gone";
  r.body = body.dump();
  return r;
}

Response gone_for(const std::string& patient) {
  return gone("the content of patient '" + patient +
              "' was erased; its entries and receipts remain on the ledger");
}

Response wrong_media_type(const std::string& route, const char* type) {
  return problem(415, "unsupported-media-type", route + " takes Content-Type: " + type);
}

// The node's vault, with every erasure on the ledger applied to it.
Result<domain::Vault> open_vault(const ledger::Ledger& l) {
  CUSTOS_ASSIGN_OR_RETURN(domain::Vault v, domain::Vault::open(l.data_dir()));
  CUSTOS_RETURN_IF_ERROR(v.apply_erasures(l).status());
  return v;
}

// The ledger's word on a patient (nullopt when the patient has no records).
Result<std::optional<domain::PatientState>> patient_state(const ledger::Ledger& l,
                                                          const std::string& patient) {
  auto bytes = l.rule_record(domain::patient_key(patient));
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kNotFound) return std::optional<domain::PatientState>();
    return bytes.status();
  }
  CUSTOS_ASSIGN_OR_RETURN(domain::PatientState p, domain::PatientState::decode(*bytes));
  return std::optional<domain::PatientState>(std::move(p));
}

// A statement of `type` from a request body; kMalformed otherwise.
Result<cose::Statement> statement_of(ByteView bytes, std::string_view type, const char* route) {
  if (bytes.size() > limits::kStatementBytesMax) {
    return error(ErrorCode::kTooLarge,
                 "statement larger than " + std::to_string(limits::kStatementBytesMax) + " bytes");
  }
  CUSTOS_ASSIGN_OR_RETURN(cose::Statement st, cose::parse_statement(bytes));
  if (st.header.content_type != type) {
    return error(ErrorCode::kMalformed, std::string(route) + " takes a statement of content type " +
                                            std::string(type) + ", not " + st.header.content_type);
  }
  return st;
}

json with_registration(json j, const node::Submission& s) {
  j["entry"] = registered_json(s);
  return j;
}

// --- POST /v1/records ---

struct RecordUpload {
  Bytes statement;
  Bytes content;
  Bytes salt;
};

Result<RecordUpload> parse_upload(const std::string& body) {
  // Not signed or hashed itself, so any well-formed CBOR map will do.
  cbor::DecodeOptions options;
  options.max_depth = 2;
  options.max_items = 16;
  options.require_deterministic = false;
  auto v = cbor::decode(as_view(body), options);
  if (!v.ok()) return error(ErrorCode::kMalformed, "record body: " + v.status().message());
  if (!v->is(cbor::Type::kMap))
    return error(ErrorCode::kMalformed,
                 "record body must be a CBOR map {statement, content, salt}");
  RecordUpload u;
  for (const auto& [k, val] : v->as_map()) {
    const std::string name = k.is(cbor::Type::kText) ? k.as_text() : "";
    Bytes* field = name == "statement" ? &u.statement
                   : name == "content" ? &u.content
                   : name == "salt"    ? &u.salt
                                       : nullptr;
    if (!field) return error(ErrorCode::kMalformed, "record body: unknown field '" + name + "'");
    if (!val.is(cbor::Type::kBytes))
      return error(ErrorCode::kMalformed, "record body: field '" + name + "' must be a bstr");
    *field = val.as_bytes();
  }
  if (u.statement.empty())
    return error(ErrorCode::kMalformed, "record body: field 'statement' is required");
  if (u.salt.size() != domain::kSaltBytes) {
    return error(ErrorCode::kMalformed, "record body: field 'salt' must be " +
                                            std::to_string(domain::kSaltBytes) + " random bytes");
  }
  if (u.content.size() > domain::kVaultContentBytesMax) {
    return error(ErrorCode::kTooLarge, "content of " + std::to_string(u.content.size()) +
                                           " bytes exceeds " +
                                           std::to_string(domain::kVaultContentBytesMax));
  }
  return u;
}

Response post_record(node::Node& node, const Request& r) {
  if (r.content_type.rfind(kContentTypeCbor, 0) != 0)
    return wrong_media_type("POST /v1/records", kContentTypeCbor);
  if (r.body.size() > kRecordBodyBytesMax) {
    return problem(error(ErrorCode::kTooLarge, "record body larger than " +
                                                   std::to_string(kRecordBodyBytesMax) + " bytes"));
  }
  auto upload = parse_upload(r.body);
  if (!upload.ok()) return problem(upload.status());
  auto st = statement_of(upload->statement, domain::kTypeClinicalRecord, "POST /v1/records");
  if (!st.ok()) return problem(st.status());
  auto rec = domain::parse_clinical_record(*st);
  if (!rec.ok()) return problem(rec.status());
  if (domain::record_commitment(upload->salt, upload->content) != rec->commitment) {
    return problem(
        422, "commitment-mismatch",
        "SHA-256(salt || content) is not the statement's commitment " + to_hex(rec->commitment));
  }
  auto vault = open_vault(node.ledger());
  if (!vault.ok()) return problem(vault.status());
  if (Status cap = vault->check_capacity(rec->patient); !cap.ok()) {
    return cap.code() == ErrorCode::kConflict ? gone_for(rec->patient) : problem(cap);
  }
  auto s = node.submit(upload->statement);
  if (!s.ok()) return problem(s.status());
  const domain::VaultRecord content{rec->content_type, upload->salt, upload->content};
  if (Status put = vault->put(rec->patient, rec->record, content); !put.ok()) {
    if (put.code() == ErrorCode::kConflict && *vault->erased(rec->patient))
      return gone_for(rec->patient);
    return problem(error(put.code(), "entry " + to_hex(s->registered.id) +
                                         " is registered but its content is not stored: " +
                                         put.message() + " (send the same request again)"));
  }
  json j =
      with_registration({{"patient", rec->patient}, {"record", rec->record}, {"stored", true}}, *s);
  return json_response(j, s->already_registered ? 200 : 201);
}

// --- POST /v1/records/access ---

Response post_access(node::Node& node, const Request& r) {
  if (r.content_type.rfind(kContentTypeCose, 0) != 0)
    return wrong_media_type("POST /v1/records/access", kContentTypeCose);
  auto st = statement_of(as_view(r.body), domain::kTypeRecordAccess, "POST /v1/records/access");
  if (!st.ok()) return problem(st.status());
  auto access = domain::parse_record_access(*st);
  if (!access.ok()) return problem(access.status());
  auto vault = open_vault(node.ledger());
  if (!vault.ok()) return problem(vault.status());
  domain::VaultRecord content;
  // Before logging anything: a read this node cannot serve is not a read.
  auto before = vault->get(access->patient, access->record, &content);
  if (!before.ok()) return problem(before.status());
  if (*before == domain::VaultLookup::kErased) return gone_for(access->patient);
  if (*before == domain::VaultLookup::kMissing) {
    return problem(error(ErrorCode::kNotFound, "record '" + access->record + "' of patient '" +
                                                   access->patient +
                                                   "' is not held by this node's vault"));
  }
  auto s = node.submit(as_view(r.body));
  if (!s.ok()) {
    // Erased between the look and the registration: the rules refused it.
    auto p = patient_state(node.ledger(), access->patient);
    if (p.ok() && *p && (*p)->erasure) return gone_for(access->patient);
    return problem(s.status());
  }
  if (s->already_registered) {
    return problem(error(ErrorCode::kConflict,
                         "this access statement was registered before (entry " +
                             to_hex(s->registered.id) +
                             "); content is served only to the request that registers the "
                             "access: sign a new one"));
  }
  // Registered: now read (the erasure sweep may have run in between).
  auto after = vault->get(access->patient, access->record, &content);
  if (!after.ok()) return problem(after.status());
  if (*after != domain::VaultLookup::kFound) return gone_for(access->patient);
  json j = {{"patient", access->patient},
            {"record", access->record},
            {"purpose", access->purpose},
            {"content_type", content.content_type},
            {"content_base64", base64_encode(content.content)},
            {"salt_base64", base64_encode(content.salt)}};
  return json_response(with_registration(std::move(j), *s), 201);
}

// --- POST /v1/records/erasure ---

Response post_erasure(node::Node& node, const Request& r) {
  if (r.content_type.rfind(kContentTypeCose, 0) != 0)
    return wrong_media_type("POST /v1/records/erasure", kContentTypeCose);
  auto st = statement_of(as_view(r.body), domain::kTypeRecordErasure, "POST /v1/records/erasure");
  if (!st.ok()) return problem(st.status());
  auto erasure = domain::parse_record_erasure(*st);
  if (!erasure.ok()) return problem(erasure.status());
  auto s = node.submit(as_view(r.body));
  if (!s.ok()) return problem(s.status());
  auto vault = domain::Vault::open(node.ledger().data_dir());
  Status erased = vault.ok() ? vault->erase(erasure->patient) : vault.status();
  if (!erased.ok()) {
    return problem(error(erased.code(), "entry " + to_hex(s->registered.id) +
                                            " is registered but this node's copy is not "
                                            "destroyed yet (the node retries): " +
                                            erased.message()));
  }
  json j = with_registration({{"patient", erasure->patient}, {"erased", true}}, *s);
  return json_response(j, s->already_registered ? 200 : 201);
}

// --- GET /v1/patients/{pseudonym}[/accesses] ---

json erasure_json(const domain::PatientErasure& e) {
  return {{"index", e.index},
          {"erased_ms", e.erased_ms},
          {"erased_at", rfc3339(e.erased_ms)},
          {"org", e.org},
          {"reason", e.reason}};
}

Response get_patient(const ledger::Ledger& l, const std::string& patient) {
  auto p = patient_state(l, patient);
  if (!p.ok()) return problem(p.status());
  if (!*p) {
    return problem(
        error(ErrorCode::kNotFound, "patient '" + patient + "' has no clinical records"));
  }
  json records = json::array();
  Status bad;
  Status s =
      l.scan_rule_records(domain::clinical_record_prefix(patient), [&](ByteView, ByteView v) {
        auto rec = domain::ClinicalRecord::decode(v);
        if (!rec.ok()) {
          bad = rec.status();
          return false;
        }
        records.push_back({{"record", rec->record},
                           {"content_type", rec->content_type},
                           {"commitment", to_hex(rec->commitment)},
                           {"hospital", rec->hospital},
                           {"author", to_hex(rec->author)},
                           {"index", rec->index},
                           {"recorded_ms", rec->recorded_ms},
                           {"recorded_at", rfc3339(rec->recorded_ms)}});
        return true;
      });
  if (!s.ok()) return problem(s);
  if (!bad.ok()) return problem(bad);
  json j = {{"patient", patient}, {"hospitals", (*p)->hospitals}, {"records", records}};
  j["erasure"] = (*p)->erasure ? erasure_json(*(*p)->erasure) : json(nullptr);
  return json_response(j);
}

json access_json(const ledger::Ledger& l, const ledger::EntryInfo& e) {
  json j = {{"id", to_hex(e.id)},
            {"index", e.index},
            {"registered_ms", e.registered_ms},
            {"registered_at", rfc3339(e.registered_ms)},
            {"reader", {{"kid", to_hex(e.header.kid)}, {"issuer", e.header.issuer}}}};
  if (auto k = l.key(e.header.kid); k.ok()) {
    j["reader"]["name"] = k->name;
    if (!k->org.empty()) j["reader"]["org"] = k->org;
  }
  auto st = cose::parse_statement(e.statement);
  auto a = st.ok() ? domain::parse_record_access(*st) : st.status();
  if (a.ok()) {
    j["record"] = a->record;
    j["purpose"] = a->purpose;
    j["who"] = a->who;
  }
  return j;
}

Response get_accesses(const ledger::Ledger& l, const Request& r, const std::string& patient) {
  ledger::Query q;
  q.ref = domain::ref("patient", patient);
  q.content_type = std::string(domain::kTypeRecordAccess);
  q.limit = limits::kQueryPageEntriesDefault;
  if (auto* v = query_param(r, "cursor")) {
    auto c = parse_uint(*v, "cursor");
    if (!c.ok()) return problem(c.status());
    q.cursor = *c;
  }
  if (auto* v = query_param(r, "limit")) {
    auto n = parse_uint(*v, "limit");
    if (!n.ok()) return problem(n.status());
    if (*n == 0 || *n > limits::kQueryPageEntriesMax) {
      return problem(
          error(ErrorCode::kInvalidArgument,
                "'limit' must be between 1 and " + std::to_string(limits::kQueryPageEntriesMax)));
    }
    q.limit = *n;
  }
  auto page = l.query(q);
  if (!page.ok()) return problem(page.status());
  json accesses = json::array();
  for (const auto& e : page->entries) accesses.push_back(access_json(l, e));
  json j = {{"patient", patient}, {"accesses", accesses}};
  j["next_cursor"] = page->next_cursor ? json(std::to_string(*page->next_cursor)) : json(nullptr);
  return json_response(j);
}

Response route_patient(node::Node& node, const Request& r, const std::vector<std::string>& parts) {
  const std::string& patient = parts[2];
  if (Status s = domain::check_pseudonym(patient); !s.ok())
    return problem(error(ErrorCode::kInvalidArgument, "patient: " + s.message()));
  if (parts.size() == 3) return get_patient(node.ledger(), patient);
  return get_accesses(node.ledger(), r, patient);
}

}  // namespace

std::optional<Response> route_records(node::Node& node, const Request& r,
                                      const std::vector<std::string>& parts) {
  if (parts.size() < 2) return std::nullopt;
  const bool get = r.method == "GET" || r.method == "HEAD";
  const bool post = r.method == "POST";
  auto not_allowed = [&] {
    return problem(405, "method-not-allowed", r.method + " is not allowed on " + r.path);
  };
  if (parts[1] == "records") {
    if (parts.size() == 2) return post ? post_record(node, r) : not_allowed();
    if (parts.size() == 3 && parts[2] == "access")
      return post ? post_access(node, r) : not_allowed();
    if (parts.size() == 3 && parts[2] == "erasure")
      return post ? post_erasure(node, r) : not_allowed();
    return std::nullopt;
  }
  if (parts[1] == "patients" &&
      (parts.size() == 3 || (parts.size() == 4 && parts[3] == "accesses"))) {
    return get ? route_patient(node, r, parts) : not_allowed();
  }
  return std::nullopt;
}

}  // namespace custos::api
