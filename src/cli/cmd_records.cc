// `custos record put|get|erase|accesses|show`: clinical content kept off the
// ledger (docs/domain.md, "Patient data"). Each command signs its statement
// with the given key (a clinician's, a reader's, a hospital org-admin's), the
// way `custos org register` signs with an admin key.
#include <sodium.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "cli/signing.h"
#include "codec/cbor.h"
#include "core/bytes.h"
#include "core/file.h"
#include "domain/clinical.h"
#include "domain/model.h"
#include "domain/vault.h"

namespace custos::cli {

namespace {

using nlohmann::json;

struct RecordOptions {
  std::string node = kDefaultNodeUrl;
  std::string key;
  std::string patient;
  std::string record;
  std::string content_path;
  std::string content_type = "application/octet-stream";
  std::string purpose;
  std::string who;
  std::string reason;
  std::string out;
  bool json = false;
};

// Signs a statement about o.patient with o.key: the pseudonym is both the
// CWT subject and the payload's first field, "patient" (the node refuses a
// patient statement whose two differ), followed by `fields`.
Result<Bytes> sign_patient_statement(
    NodeClient& client, const RecordOptions& o, std::string_view type,
    std::initializer_list<std::pair<const char*, cbor::Value>> fields) {
  cbor::Map m;
  m.emplace_back(cbor::text("patient"), cbor::text(o.patient));
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return sign_admin_statement(client, o.key, std::string(type), o.patient,
                              cbor::encode(cbor::Value::map(std::move(m))));
}

Result<json> post_json(NodeClient& client, const std::string& path, const Bytes& body,
                       const std::string& content_type) {
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply,
                          client.post(path, std::string(body.begin(), body.end()), content_type));
  if (reply.status == 410) {
    // Erased: a refusal (exit 1), not a usage error.
    return error(ErrorCode::kConflict, reply_error(reply).message());
  }
  if (!reply.ok()) return reply_error(reply);
  auto doc = json::parse(reply.body, nullptr, false);
  if (!doc.is_object()) return error(ErrorCode::kMalformed, "the node answered with invalid JSON");
  return doc;
}

std::string entry_line(const json& doc) {
  const json& e = doc.contains("entry") ? doc["entry"] : json::object();
  return "entry " + e.value("id", std::string("?")) + " at log index " +
         (e.contains("index") ? e["index"].dump() : std::string("?"));
}

Status print(const json& doc, bool as_json, const std::string& message) {
  if (as_json)
    std::printf("%s\n", doc.dump(2).c_str());
  else
    std::printf("%s: %s\n", message.c_str(), entry_line(doc).c_str());
  return Status();
}

Status put_record(const RecordOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes content, read_file(o.content_path, domain::kVaultContentBytesMax));
  if (sodium_init() < 0) return error(ErrorCode::kInternal, "libsodium does not initialise");
  Bytes salt(domain::kSaltBytes);
  randombytes_buf(salt.data(), salt.size());
  const Hash256 commitment = domain::record_commitment(salt, content);
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(
      Bytes statement, sign_patient_statement(client, o, domain::kTypeClinicalRecord,
                                              {{"record", cbor::text(o.record)},
                                               {"content_type", cbor::text(o.content_type)},
                                               {"commitment", domain::digest_value(commitment)}}));
  cbor::Map body;
  body.emplace_back(cbor::text("statement"), cbor::Value::bytes(statement));
  body.emplace_back(cbor::text("content"), cbor::Value::bytes(content));
  body.emplace_back(cbor::text("salt"), cbor::Value::bytes(salt));
  sodium_memzero(salt.data(), salt.size());
  CUSTOS_ASSIGN_OR_RETURN(
      json doc, post_json(client, "/v1/records", cbor::encode(cbor::Value::map(std::move(body))),
                          "application/cbor"));
  return print(doc, o.json, "stored record " + o.record + " of " + o.patient);
}

// The commitment the ledger holds for the record, to check what was served.
Result<Hash256> ledger_commitment(NodeClient& client, const std::string& patient,
                                  const std::string& record) {
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/patients/" + percent_encode(patient)));
  if (!reply.ok()) return reply_error(reply);
  auto doc = json::parse(reply.body, nullptr, false);
  if (doc.is_object() && doc.contains("records") && doc["records"].is_array()) {
    for (const auto& r : doc["records"]) {
      if (r.value("record", "") == record) return hash_from_hex(r.value("commitment", ""));
    }
  }
  return error(ErrorCode::kNotFound, "the ledger names no record '" + record + "' of " + patient);
}

Status get_record(const RecordOptions& o) {
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(Bytes statement,
                          sign_patient_statement(client, o, domain::kTypeRecordAccess,
                                                 {{"record", cbor::text(o.record)},
                                                  {"purpose", cbor::text(o.purpose)},
                                                  {"who", cbor::text(o.who)}}));
  CUSTOS_ASSIGN_OR_RETURN(json doc,
                          post_json(client, "/v1/records/access", statement, "application/cose"));
  auto content = base64_decode(doc.value("content_base64", ""));
  auto salt = base64_decode(doc.value("salt_base64", ""));
  if (!content.ok() || !salt.ok())
    return error(ErrorCode::kMalformed, "the node's answer holds no content");
  // The node is trusted with the content, not with its integrity: check the
  // content against the commitment the clinician signed.
  CUSTOS_ASSIGN_OR_RETURN(Hash256 expected, ledger_commitment(client, o.patient, o.record));
  if (domain::record_commitment(*salt, *content) != expected) {
    return error(ErrorCode::kCorruption,
                 "the content served does not match the commitment on the ledger");
  }
  if (!o.out.empty()) {
    CUSTOS_RETURN_IF_ERROR(write_file_atomic(o.out, *content, 0600));
  } else if (!o.json) {
    std::fwrite(content->data(), 1, content->size(), stdout);
  }
  if (o.json) {
    doc.erase("salt_base64");
    if (!o.out.empty()) doc.erase("content_base64");
    std::printf("%s\n", doc.dump(2).c_str());
  }
  std::fprintf(stderr, "access logged as %s; content (%s, %zu bytes) matches the ledger\n",
               entry_line(doc).c_str(), doc.value("content_type", "?").c_str(), content->size());
  return Status();
}

Status erase_patient(const RecordOptions& o) {
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(Bytes statement,
                          sign_patient_statement(client, o, domain::kTypeRecordErasure,
                                                 {{"reason", cbor::text(o.reason)}}));
  CUSTOS_ASSIGN_OR_RETURN(json doc,
                          post_json(client, "/v1/records/erasure", statement, "application/cose"));
  return print(doc, o.json, "erased the content of " + o.patient);
}

Status list_accesses(const RecordOptions& o) {
  NodeClient client(o.node);
  const std::string path = "/v1/patients/" + percent_encode(o.patient) + "/accesses";
  if (o.json) return get_and_print_json(client, path);
  std::string cursor;
  for (;;) {
    CUSTOS_ASSIGN_OR_RETURN(HttpReply reply,
                            client.get(path + (cursor.empty() ? "" : "?cursor=" + cursor)));
    if (!reply.ok()) return reply_error(reply);
    auto doc = json::parse(reply.body, nullptr, false);
    if (!doc.is_object() || !doc.contains("accesses"))
      return error(ErrorCode::kMalformed, "unexpected answer from " + path);
    for (const auto& a : doc["accesses"]) {
      const json& reader = a.contains("reader") ? a["reader"] : json::object();
      std::printf("%s  %-10s %-20s by %s (%s, %s) for %s  entry %s\n",
                  a.value("registered_at", "?").c_str(), a.value("purpose", "?").c_str(),
                  a.value("record", "?").c_str(), a.value("who", "?").c_str(),
                  reader.value("name", "?").c_str(), reader.value("org", "-").c_str(),
                  o.patient.c_str(), a.value("id", "?").c_str());
    }
    if (!doc["next_cursor"].is_string()) break;
    cursor = doc["next_cursor"].get<std::string>();
  }
  return Status();
}

void add_common(CLI::App* c, RecordOptions& o, const char* key_help) {
  c->add_option("--node", o.node, "Node URL")->capture_default_str();
  c->add_option("--key", o.key, key_help)->required();
  c->add_option("--patient", o.patient, "Patient pseudonym: pseudonym:<16-64 lowercase hex>")
      ->required();
  c->add_flag("--json", o.json, "Print JSON");
}

template <typename F>
void run(CLI::App* c, std::shared_ptr<RecordOptions> o, F f) {
  c->callback([o, f] {
    if (Status s = f(*o); !s.ok()) exit_status() = fail(s);
  });
}

std::string list(const std::vector<std::string_view>& items) {
  std::string out;
  for (auto i : items) out += (out.empty() ? "" : ", ") + std::string(i);
  return out;
}

}  // namespace

void add_record_commands(CLI::App& app) {
  CLI::App* rec = app.add_subcommand("record", "Clinical content off the ledger (vault)");
  rec->require_subcommand(1);

  auto put = std::make_shared<RecordOptions>();
  CLI::App* p = rec->add_subcommand(
      "put", "Commit to a record on the ledger and store its content in the node's vault");
  add_common(p, *put, "Clinician's private key PEM (prescriber, nurse or pharmacist)");
  p->add_option("--record", put->record, "Record id")->required();
  p->add_option("--content", put->content_path, "File with the clinical content")->required();
  p->add_option("--content-type", put->content_type, "Media type of the content")
      ->capture_default_str();
  run(p, put, put_record);

  auto get = std::make_shared<RecordOptions>();
  CLI::App* g =
      rec->add_subcommand("get", "Log an access on the ledger, then read the record's content");
  add_common(g, *get, "Reader's private key PEM");
  g->add_option("--record", get->record, "Record id")->required();
  g->add_option("--purpose", get->purpose,
                "HL7 v3 PurposeOfUse: " + list(domain::purpose_of_use_codes()))
      ->required();
  g->add_option("--who", get->who, "User id of the person reading (no names)")->required();
  g->add_option("--out", get->out, "Write the content here (default: standard output)");
  run(g, get, get_record);

  auto erase = std::make_shared<RecordOptions>();
  CLI::App* e = rec->add_subcommand(
      "erase", "Destroy a patient's content (crypto-shredding); the ledger keeps every entry");
  add_common(e, *erase, "Hospital org-admin's private key PEM");
  e->add_option("--reason", erase->reason, list(domain::erasure_reasons()))->required();
  run(e, erase, erase_patient);

  auto acc = std::make_shared<RecordOptions>();
  CLI::App* a = rec->add_subcommand("accesses", "Who read a patient's records, when and why");
  a->add_option("--node", acc->node, "Node URL")->capture_default_str();
  a->add_option("--patient", acc->patient, "Patient pseudonym")->required();
  a->add_flag("--json", acc->json, "Print JSON (one page)");
  run(a, acc, list_accesses);

  auto show = std::make_shared<RecordOptions>();
  CLI::App* s = rec->add_subcommand("show", "A patient's records and erasure on the ledger (JSON)");
  s->add_option("--node", show->node, "Node URL")->capture_default_str();
  s->add_option("--patient", show->patient, "Patient pseudonym")->required();
  run(s, show, [](const RecordOptions& o) {
    NodeClient client(o.node);
    return get_and_print_json(client, "/v1/patients/" + percent_encode(o.patient));
  });
}

}  // namespace custos::cli
