// `custos sign | submit | get | receipt | verify | checkpoint | entries`.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "cli/signing.h"
#include "codec/cbor_json.h"
#include "core/file.h"
#include "core/quorum.h"
#include "cose/receipt.h"
#include "crypto/hash.h"
#include "ledger/block.h"
#include "ledger/genesis.h"

namespace custos::cli {

using nlohmann::json;

namespace {

Result<Bytes> read_input(const std::string& path) {
  if (path != "-") return read_file(path, limits::kStatementBytesMax);
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (text.size() > limits::kStatementBytesMax)
    return error(ErrorCode::kTooLarge, "standard input too large");
  return to_bytes(text);
}

struct SignOptions {
  std::string key;
  std::string type;
  std::string issuer;
  std::string subject;
  uint64_t sequence = 0;
  std::string sequence_file;
  uint64_t issued_at_s = 0;
  std::string json_path, cbor_path, raw_path;
  std::string out;
};

Status sign(const SignOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey key, load_private_key(o.key));
  const int inputs = !o.json_path.empty() + !o.cbor_path.empty() + !o.raw_path.empty();
  if (inputs != 1)
    return error(ErrorCode::kInvalidArgument, "give exactly one of --json, --cbor, --payload");
  Bytes payload;
  if (!o.json_path.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(Bytes text, read_input(o.json_path));
    json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded())
      return error(ErrorCode::kInvalidArgument, o.json_path + ": not valid JSON");
    CUSTOS_ASSIGN_OR_RETURN(cbor::Value v, cbor::from_json(doc));
    payload = cbor::encode(v);
  } else if (!o.cbor_path.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(payload, read_input(o.cbor_path));
    auto v = cbor::decode(payload);
    if (!v.ok())
      return error(ErrorCode::kInvalidArgument, o.cbor_path + ": " + v.status().message());
  } else {
    CUSTOS_ASSIGN_OR_RETURN(payload, read_input(o.raw_path));
  }
  cose::StatementHeader h;
  h.content_type = o.type.empty()
                       ? (o.raw_path.empty() ? "application/cbor" : "application/octet-stream")
                       : o.type;
  h.issuer = o.issuer;
  h.subject = o.subject;
  h.issued_at_s =
      o.issued_at_s ? o.issued_at_s
                    : static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  const std::string seq_file = o.sequence_file.empty() ? o.key + ".seq" : o.sequence_file;
  if (o.sequence) {
    h.sequence = o.sequence;
    CUSTOS_RETURN_IF_ERROR(note_sequence_in_file(seq_file, o.sequence));
  } else {
    CUSTOS_ASSIGN_OR_RETURN(h.sequence, take_sequence_from_file(seq_file));
  }
  Bytes statement = cose::sign_statement(key, h, payload);
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(o.out, statement));
  std::fprintf(stderr, "signed %zu-byte statement (sequence %llu) -> %s\n", statement.size(),
               static_cast<unsigned long long>(h.sequence), o.out.c_str());
  return Status();
}

struct SubmitOptions {
  std::string node = kDefaultNodeUrl;
  std::vector<std::string> files;
  bool batch = false;
  bool json = false;
};

Status submit(const SubmitOptions& o) {
  NodeClient client(o.node);
  if (!o.batch) {
    for (const auto& f : o.files) {
      CUSTOS_ASSIGN_OR_RETURN(Bytes statement, read_file(f, limits::kStatementBytesMax));
      CUSTOS_RETURN_IF_ERROR(submit_and_print(client, statement, o.json, f));
    }
    return Status();
  }
  cbor::Array items;
  for (const auto& f : o.files) {
    CUSTOS_ASSIGN_OR_RETURN(Bytes statement, read_file(f, limits::kStatementBytesMax));
    items.push_back(cbor::Value::bytes(std::move(statement)));
  }
  Bytes body = cbor::encode(cbor::Value::array(std::move(items)));
  CUSTOS_ASSIGN_OR_RETURN(
      HttpReply reply,
      client.post("/v1/entries/batch", std::string(body.begin(), body.end()), "application/cbor"));
  if (!reply.ok()) return reply_error(reply);
  json doc = json::parse(reply.body, nullptr, false);
  std::printf("%s\n", doc.dump(2).c_str());
  for (const auto& r : doc.value("results", json::array())) {
    if (r.value("status", "") == "refused")
      return error(ErrorCode::kPolicy, "some statements were refused");
  }
  return Status();
}

Status get(const std::string& node, const std::string& id, const std::string& out) {
  NodeClient client(node);
  if (!out.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/entries/" + id, "application/cose"));
    if (!reply.ok()) return reply_error(reply);
    return write_file_atomic(out, reply.body);
  }
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/entries/" + id));
  if (!reply.ok()) return reply_error(reply);
  std::printf("%s\n", json::parse(reply.body, nullptr, false).dump(2).c_str());
  return Status();
}

Status receipt(const std::string& node, const std::string& id, const std::string& out) {
  NodeClient client(node);
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply,
                          client.get("/v1/entries/" + id + "/receipt", "application/cbor"));
  if (!reply.ok()) return reply_error(reply);
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(out, reply.body));
  std::fprintf(stderr, "receipt (%zu bytes) -> %s\n", reply.body.size(), out.c_str());
  return Status();
}

struct VerifyOptions {
  std::string statement, receipt, node_key, genesis;
  bool json = false;
};

// A bundle holds one element per genesis node, so it must fit them all.
static_assert(cose::kReceiptBundleEntriesMax >= ledger::kGenesisKeysMax);

// Whose signatures the receipt must carry: a quorum of the genesis nodes, or
// the one node whose key was given.
struct ExpectedSigners {
  std::vector<crypto::PublicKey> keys;  // genesis order
  std::vector<std::string> names;
  size_t quorum = 1;
};

Result<ExpectedSigners> expected_signers(const VerifyOptions& o) {
  ExpectedSigners out;
  if (!o.node_key.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(Bytes pem, read_file(o.node_key, 64 * 1024));
    CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key,
                            crypto::PublicKey::from_pem(as_string_view(pem)));
    out.keys.push_back(std::move(key));
    out.names.push_back("node");
    return out;
  }
  if (o.genesis.empty()) return error(ErrorCode::kInvalidArgument, "give --node-key or --genesis");
  CUSTOS_ASSIGN_OR_RETURN(Bytes gbytes, read_file(o.genesis, ledger::kGenesisBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(ledger::Genesis g, ledger::parse_genesis(gbytes));
  for (const ledger::NamedKey& n : g.nodes) {
    out.keys.push_back(n.key);
    out.names.push_back(n.name);
  }
  out.quorum = quorum_size(g.nodes.size());
  return out;
}

// With --node-key only that node's element matters. A single receipt keeps
// verify_receipt's precise message (wrong kid, wrong alg, ...).
Status check_node_key(const std::vector<cose::Receipt>& receipts, ByteView statement,
                      const ExpectedSigners& signers, const cose::ReceiptQuorum& check) {
  if (receipts.size() == 1) return cose::verify_receipt(receipts[0], statement, signers.keys[0]);
  if (check.has_quorum()) return Status();
  const std::string kid = to_hex(signers.keys[0].kid());
  std::string reasons;
  for (const auto& r : check.rejected) {
    if (!r.node) continue;  // another node's element
    reasons += "; element " + std::to_string(r.element) + ": " + r.reason;
  }
  if (reasons.empty()) {
    return error(ErrorCode::kBadSignature, "none of the " + std::to_string(receipts.size()) +
                                               " receipts in the bundle is signed by the node "
                                               "key (kid " +
                                               kid + ")");
  }
  return error(ErrorCode::kBadSignature,
               "no element signed by the node key (kid " + kid + ") verifies" + reasons);
}

std::string signer_names(const cose::ReceiptQuorum& check, const ExpectedSigners& signers) {
  std::string out;
  for (const auto& s : check.signers) out += (out.empty() ? "" : ", ") + signers.names[s.node];
  return out;
}

json quorum_json(const cose::ReceiptQuorum& check, const ExpectedSigners& signers) {
  json signed_by = json::array();
  for (const auto& s : check.signers) {
    signed_by.push_back({{"name", signers.names[s.node]},
                         {"kid", to_hex(signers.keys[s.node].kid())},
                         {"element", s.element}});
  }
  json rejected = json::array();
  for (const auto& r : check.rejected) {
    json item = {{"element", r.element}, {"reason", r.reason}};
    if (r.node) item["node"] = signers.names[*r.node];
    rejected.push_back(std::move(item));
  }
  return {{"signers", std::move(signed_by)},
          {"quorum", check.quorum},
          {"nodes", check.node_count},
          {"rejected", std::move(rejected)}};
}

// Offline: needs nothing but the files. The receipt is a bundle (or one
// receipt); with --genesis it must carry quorum_size(genesis nodes) valid
// signatures of distinct nodes over one root, with --node-key one valid
// element from that key.
Status verify(const VerifyOptions& o, std::string* summary) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes statement, read_file(o.statement, limits::kStatementBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(Bytes receipt_bytes, read_file(o.receipt, cose::kReceiptBundleBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(std::vector<cose::Receipt> receipts,
                          cose::parse_receipt_bundle(receipt_bytes));
  CUSTOS_ASSIGN_OR_RETURN(ExpectedSigners signers, expected_signers(o));
  // The statement itself must also be well-formed; its signature is checked
  // by the node at registration and by `custos audit`, which know the keys.
  CUSTOS_ASSIGN_OR_RETURN(cose::Statement st, cose::parse_statement(statement));
  CUSTOS_ASSIGN_OR_RETURN(
      cose::ReceiptQuorum check,
      cose::check_receipt_bundle(receipts, statement, signers.keys, signers.quorum));
  if (!o.node_key.empty()) {
    CUSTOS_RETURN_IF_ERROR(check_node_key(receipts, statement, signers, check));
  } else {
    CUSTOS_RETURN_IF_ERROR(cose::receipt_quorum_status(check, signers.names));
  }
  const cose::Receipt& first = receipts[check.signers.front().element];
  const std::string entry_id = to_hex(crypto::sha256(statement));
  json j = {{"valid", true},
            {"entry_id", entry_id},
            {"leaf_index", check.leaf_index},
            {"tree_size", check.tree_size},
            {"issuer", st.header.issuer},
            {"subject", st.header.subject},
            {"content_type", st.header.content_type},
            {"receipt_issuer", first.header.issuer},
            {"registered_at_s", first.header.issued_at_s},
            {"node_kid", to_hex(first.header.kid)}};
  j.update(quorum_json(check, signers));
  std::string by = !o.node_key.empty()
                       ? "node (" + to_hex(first.header.kid).substr(0, 16) + "...)"
                       : std::to_string(check.signers.size()) + " of " +
                             std::to_string(check.node_count) + " consortium nodes (quorum " +
                             std::to_string(check.quorum) + "): " + signer_names(check, signers);
  *summary = o.json ? j.dump(2)
                    : "valid: entry " + entry_id + " is leaf " + std::to_string(check.leaf_index) +
                          " of a log of " + std::to_string(check.tree_size) +
                          " entries, receipt signed by " + by;
  return Status();
}

Status checkpoint(const std::string& node, const std::string& out,
                  const std::string& node_key_path) {
  NodeClient client(node);
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/checkpoint", "application/cose"));
  if (!reply.ok()) return reply_error(reply);
  if (!out.empty()) CUSTOS_RETURN_IF_ERROR(write_file_atomic(out, reply.body));
  if (!node_key_path.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(Bytes pem, read_file(node_key_path, 64 * 1024));
    CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key,
                            crypto::PublicKey::from_pem(as_string_view(pem)));
    CUSTOS_ASSIGN_OR_RETURN(ledger::BlockHeader h,
                            ledger::verify_checkpoint(as_view(reply.body), key));
    std::printf("%s\n", json({{"valid", true},
                              {"height", h.height},
                              {"log_size", h.log_size},
                              {"root", to_hex(h.root)},
                              {"time_ms", h.time_ms}})
                            .dump(2)
                            .c_str());
    return Status();
  }
  CUSTOS_ASSIGN_OR_RETURN(HttpReply info, client.get("/v1/checkpoint"));
  if (!info.ok()) return reply_error(info);
  std::printf("%s\n", json::parse(info.body, nullptr, false).dump(2).c_str());
  return Status();
}

struct EntriesOptions {
  std::string node = kDefaultNodeUrl;
  std::string issuer, subject, type, from, to, cursor, limit;
};

Status entries(const EntriesOptions& o) {
  std::string q;
  auto add = [&](const char* name, const std::string& v) {
    if (!v.empty()) q += (q.empty() ? "?" : "&") + std::string(name) + "=" + percent_encode(v);
  };
  add("issuer", o.issuer);
  add("subject", o.subject);
  add("type", o.type);
  add("from", o.from);
  add("to", o.to);
  add("cursor", o.cursor);
  add("limit", o.limit);
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/entries" + q));
  if (!reply.ok()) return reply_error(reply);
  std::printf("%s\n", json::parse(reply.body, nullptr, false).dump(2).c_str());
  return Status();
}

// Prints a CBOR file in RFC 8949 diagnostic notation; for a COSE_Sign1 also
// the decoded protected header and payload, which are nested byte strings.
Status inspect(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes bytes, read_file(path, limits::kHttpBodyBytesMax));
  cbor::DecodeOptions lenient;
  lenient.require_deterministic = false;
  CUSTOS_ASSIGN_OR_RETURN(cbor::Value v, cbor::decode(bytes, lenient));
  std::printf("%zu bytes: %s\n\n%s\n", bytes.size(), to_hex(bytes).c_str(),
              cbor::diagnostic(v).c_str());
  const cbor::Value* body = &v;
  if (v.is(cbor::Type::kTag) && v.tag_number() == cose::kTagSign1) body = &v.tag_content();
  if (!body->is(cbor::Type::kArray) || body->as_array().size() != 4) return Status();
  const cbor::Array& a = body->as_array();
  auto nested = [&](const char* what, const cbor::Value& item) {
    if (!item.is(cbor::Type::kBytes) || item.as_bytes().empty()) return;
    auto inner = cbor::decode(item.as_bytes(), lenient);
    if (inner.ok()) std::printf("\n%s: %s\n", what, cbor::diagnostic(*inner).c_str());
  };
  nested("protected header", a[0]);
  nested("payload", a[2]);
  if (const cbor::Value* vdp = a[1].find(cose::kHeaderVdp); vdp && vdp->is(cbor::Type::kMap)) {
    if (const cbor::Value* proofs = vdp->find(cose::kVdpInclusion);
        proofs && proofs->is(cbor::Type::kArray)) {
      for (const auto& p : proofs->as_array())
        nested("inclusion proof [tree_size, leaf_index, path]", p);
    }
  }
  return Status();
}

template <typename Fn>
void run(Fn fn) {
  Status s = fn();
  if (!s.ok()) exit_status() = fail(s);
}

}  // namespace

void add_statement_commands(CLI::App& app) {
  auto so = std::make_shared<SignOptions>();
  CLI::App* s = app.add_subcommand("sign", "Sign a payload into a COSE_Sign1 statement");
  s->add_option("--key", so->key, "Private key PEM")->required();
  s->add_option("--type", so->type, "Content type (default application/cbor)");
  s->add_option("--iss", so->issuer, "Issuer (CWT iss)")->required();
  s->add_option("--sub", so->subject, "Subject (CWT sub)")->required();
  s->add_option("--seq", so->sequence, "Sequence number (default: next from the sequence file)");
  s->add_option("--seq-file", so->sequence_file, "Sequence file (default KEY.seq)");
  s->add_option("--iat", so->issued_at_s, "Issued-at, seconds since 1970 (default now)");
  s->add_option("--json", so->json_path,
                "JSON payload file ('-' = stdin), signed as deterministic CBOR");
  s->add_option("--cbor", so->cbor_path, "Deterministic CBOR payload file");
  s->add_option("--payload", so->raw_path, "Raw payload bytes (opaque content types)");
  s->add_option("--out", so->out, "Statement file to write")->required();
  s->callback([so] { run([&] { return sign(*so); }); });

  auto sub = std::make_shared<SubmitOptions>();
  CLI::App* sm =
      app.add_subcommand("submit", "Submit statements and wait until they are registered");
  sm->add_option("--node", sub->node, "Node URL")->capture_default_str();
  sm->add_flag("--batch", sub->batch, "Send all files in one batch request");
  sm->add_flag("--json", sub->json, "Print JSON");
  sm->add_option("files", sub->files, "Statement files")->required();
  sm->callback([sub] { run([&] { return submit(*sub); }); });

  auto go = std::make_shared<std::array<std::string, 3>>();
  (*go)[0] = kDefaultNodeUrl;
  CLI::App* g = app.add_subcommand("get", "Show an entry (JSON), or save its statement with --out");
  g->add_option("--node", (*go)[0], "Node URL")->capture_default_str();
  g->add_option("--out", (*go)[2], "Write the statement bytes here instead");
  g->add_option("id", (*go)[1], "Entry id")->required();
  g->callback([go] { run([&] { return get((*go)[0], (*go)[1], (*go)[2]); }); });

  auto ro = std::make_shared<std::array<std::string, 3>>();
  (*ro)[0] = kDefaultNodeUrl;
  CLI::App* r = app.add_subcommand("receipt", "Fetch an entry's COSE receipt");
  r->add_option("--node", (*ro)[0], "Node URL")->capture_default_str();
  r->add_option("id", (*ro)[1], "Entry id")->required();
  r->add_option("--out", (*ro)[2], "Receipt file to write")->required();
  r->callback([ro] { run([&] { return receipt((*ro)[0], (*ro)[1], (*ro)[2]); }); });

  auto vo = std::make_shared<VerifyOptions>();
  CLI::App* v = app.add_subcommand("verify", "Verify a statement and its receipt offline");
  v->add_option("--statement", vo->statement, "Statement file")->required();
  v->add_option("--receipt", vo->receipt, "Receipt file: a bundle of node receipts or one receipt")
      ->required();
  v->add_option("--node-key", vo->node_key, "Node public key PEM: check only that node's element");
  v->add_option("--genesis", vo->genesis,
                "Genesis file: require a quorum of its nodes' signatures");
  v->add_flag("--json", vo->json, "Print JSON");
  v->callback([vo] {
    std::string summary;
    Status st = verify(*vo, &summary);
    if (st.ok()) {
      std::printf("%s\n", summary.c_str());
    } else {
      if (vo->json) {
        std::printf("%s\n", json({{"valid", false}, {"reason", st.to_string()}}).dump(2).c_str());
      }
      std::fprintf(stderr, "invalid: %s\n", st.to_string().c_str());
      exit_status() = st.code() == ErrorCode::kNotFound || st.code() == ErrorCode::kIo
                          ? kExitUsage
                          : kExitRefused;
    }
  });

  auto co = std::make_shared<std::array<std::string, 3>>();
  (*co)[0] = kDefaultNodeUrl;
  CLI::App* c = app.add_subcommand(
      "checkpoint", "Show (and optionally verify or save) the newest signed checkpoint");
  c->add_option("--node", (*co)[0], "Node URL")->capture_default_str();
  c->add_option("--out", (*co)[1], "Save the COSE checkpoint here");
  c->add_option("--node-key", (*co)[2], "Verify it with this node public key PEM");
  c->callback([co] { run([&] { return checkpoint((*co)[0], (*co)[1], (*co)[2]); }); });

  auto io = std::make_shared<std::string>();
  CLI::App* in = app.add_subcommand(
      "inspect", "Show a statement, receipt or any CBOR file in diagnostic notation");
  in->add_option("file", *io, "File to show")->required();
  in->callback([io] { run([&] { return inspect(*io); }); });

  auto eo = std::make_shared<EntriesOptions>();
  CLI::App* e =
      app.add_subcommand("entries", "List entries by issuer, subject, type and time (JSON pages)");
  e->add_option("--node", eo->node, "Node URL")->capture_default_str();
  e->add_option("--issuer", eo->issuer, "CWT issuer");
  e->add_option("--subject", eo->subject, "CWT subject");
  e->add_option("--type", eo->type, "Content type");
  e->add_option("--from", eo->from, "Registered at or after (ms or RFC 3339)");
  e->add_option("--to", eo->to, "Registered before (ms or RFC 3339)");
  e->add_option("--cursor", eo->cursor, "next_cursor of the previous page");
  e->add_option("--limit", eo->limit, "Entries per page");
  e->callback([eo] { run([&] { return entries(*eo); }); });
}

}  // namespace custos::cli
