// `custos order create|verify|program|show` (the infusion chain, each step
// signed with the actor's own key file) and `custos report ORDER`: the
// incident report as a timeline a risk manager can read, then the
// deviations and whom they are attributed to; --out writes every step's
// statement and receipt, --genesis verifies every receipt offline.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "cli/signing.h"
#include "codec/cbor.h"
#include "core/file.h"
#include "core/quorum.h"
#include "cose/receipt.h"
#include "domain/model.h"
#include "ledger/genesis.h"

namespace custos::cli {

namespace {

using nlohmann::json;

// --- Building payloads ---

cbor::Value quantity(double value, const std::string& unit) {
  cbor::Map m;
  m.emplace_back(cbor::text("value"), cbor::Value::float64(value));
  m.emplace_back(cbor::text("unit"), cbor::text(unit));
  return cbor::Value::map(std::move(m));
}

class Payload {
 public:
  Payload& text(const char* k, const std::string& v) {
    if (!v.empty()) m_.emplace_back(cbor::text(k), cbor::text(v));
    return *this;
  }
  Payload& value(const char* k, cbor::Value v) {
    m_.emplace_back(cbor::text(k), std::move(v));
    return *this;
  }
  Bytes encode() { return cbor::encode(cbor::Value::map(std::move(m_))); }

 private:
  cbor::Map m_;
};

// What a prescriber orders or a nurse programs.
struct Dosing {
  std::string drug;
  double dose = 0;
  std::string dose_unit;
  double rate_ml_h = 0;
  double vtbi_ml = 0;
};

void add_dosing_options(CLI::App* c, Dosing& d) {
  c->add_option("--drug", d.drug, "Drug name")->required();
  c->add_option("--dose", d.dose, "Dose (or dose rate) value")->required();
  c->add_option("--dose-unit", d.dose_unit, "UCUM unit of the dose: mg, [iU], ug/kg/min, ...")
      ->required();
  c->add_option("--rate", d.rate_ml_h, "Rate in mL/h")->required();
  c->add_option("--vtbi", d.vtbi_ml, "Volume to be infused, mL")->required();
}

void add_dosing(Payload& p, const Dosing& d) {
  p.text("drug", d.drug)
      .value("dose", quantity(d.dose, d.dose_unit))
      .value("rate", quantity(d.rate_ml_h, "mL/h"))
      .value("vtbi_ml", cbor::Value::float64(d.vtbi_ml));
}

// --- order create | verify | program ---

struct StepOptions {
  std::string node = kDefaultNodeUrl;
  std::string key;
  std::string order;
  bool json = false;
  // create
  std::string patient, drug_code, route = "intravenous", care_area;
  // verify
  std::string prev, outcome = "verified", reason;
  // program
  std::string device, drug_library;
  Dosing dosing;
};

Status sign_and_submit(const StepOptions& o, std::string_view type, Bytes payload,
                       const std::string& message) {
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(Bytes statement, sign_admin_statement(client, o.key, std::string(type),
                                                                "orders/" + o.order, payload));
  return submit_and_print(client, statement, o.json, message);
}

Status create_order(const StepOptions& o) {
  Payload p;
  p.text("order", o.order).text("patient", o.patient).text("drug_code", o.drug_code);
  add_dosing(p, o.dosing);
  p.text("route", o.route).text("care_area", o.care_area);
  return sign_and_submit(o, domain::kTypeMedicationOrder, p.encode(), "recorded order " + o.order);
}

Result<json> fetch_order(NodeClient& client, const std::string& id) {
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/orders/" + percent_encode(id)));
  if (!reply.ok()) return reply_error(reply);
  json doc = json::parse(reply.body, nullptr, false);
  if (!doc.is_object() || !doc.contains("order"))
    return error(ErrorCode::kMalformed, "unexpected answer from /v1/orders");
  return doc;
}

Status verify_order(StepOptions o) {
  if (o.prev.empty()) {
    NodeClient client(o.node);
    CUSTOS_ASSIGN_OR_RETURN(json doc, fetch_order(client, o.order));
    o.prev = doc["order"].value("entry", "");
  }
  Payload p;
  p.text("order", o.order).text("prev", o.prev).text("outcome", o.outcome).text("reason", o.reason);
  return sign_and_submit(o, domain::kTypePharmacyVerification, p.encode(),
                         o.outcome + " order " + o.order);
}

Status program_pump(StepOptions o) {
  if (o.prev.empty()) {
    // The latest verification; programming without one is recorded (and
    // reported as a deviation), so it must be asked for explicitly.
    NodeClient client(o.node);
    CUSTOS_ASSIGN_OR_RETURN(json doc, fetch_order(client, o.order));
    o.prev = doc["order"].value("verification_entry", "");
    if (o.prev.empty()) {
      return error(ErrorCode::kInvalidArgument,
                   "order " + o.order +
                       " has no pharmacy verification; to program without one, pass --prev " +
                       doc["order"].value("entry", "<order entry>"));
    }
  }
  Payload p;
  p.text("order", o.order)
      .text("prev", o.prev)
      .text("device", o.device)
      .text("drug_library", o.drug_library);
  add_dosing(p, o.dosing);
  return sign_and_submit(o, domain::kTypePumpProgramming, p.encode(),
                         "programmed " + o.device + " for order " + o.order);
}

// --- order show ---

std::string number(const json& v) {
  if (!v.is_number()) return "?";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v.get<double>());
  return buf;
}

std::string quantity_text(const json& q) {
  return number(q.value("value", json())) + " " + q.value("unit", "");
}

Status show_order(const std::string& node, const std::string& id, bool as_json) {
  NodeClient client(node);
  if (as_json) return get_and_print_json(client, "/v1/orders/" + percent_encode(id));
  CUSTOS_ASSIGN_OR_RETURN(json doc, fetch_order(client, id));
  const json& o = doc["order"];
  std::printf("order %s (%s) of %s, status %s\n", o.value("id", "").c_str(),
              o.value("hospital", "").c_str(), o.value("patient", "").c_str(),
              doc.value("status", "").c_str());
  std::printf("  %s %s at %s, VTBI %s mL, %s, care area %s\n", o.value("drug", "").c_str(),
              quantity_text(o["dose"]).c_str(), quantity_text(o["rate"]).c_str(),
              number(o.value("vtbi_ml", json())).c_str(), o.value("route", "").c_str(),
              o.value("care_area", "").c_str());
  std::printf("  ordered %s, entry %s\n", o.value("ordered_at", "").c_str(),
              o.value("entry", "").c_str());
  if (o.contains("verification_entry"))
    std::printf("  verification %s\n", o["verification_entry"].get<std::string>().c_str());
  if (o.contains("programming_entry"))
    std::printf("  programming %s on %s\n", o["programming_entry"].get<std::string>().c_str(),
                o.value("device", "").c_str());
  std::printf("  %s step(s), %s deviation(s): custos report %s\n", doc["steps"].dump().c_str(),
              doc["deviations"].dump().c_str(), id.c_str());
  return Status();
}

// --- report ---

struct ReportOptions {
  std::string node = kDefaultNodeUrl;
  std::string order;
  std::string out;
  std::string genesis;
  bool json = false;
};

struct Consortium {
  std::vector<crypto::PublicKey> keys;
  std::vector<std::string> names;
  size_t quorum = 1;
};

Result<Consortium> load_consortium(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes bytes, read_file(path, ledger::kGenesisBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(ledger::Genesis g, ledger::parse_genesis(bytes));
  Consortium c;
  for (const auto& n : g.nodes) {
    c.keys.push_back(n.key);
    c.names.push_back(n.name);
  }
  c.quorum = quorum_size(g.nodes.size());
  return c;
}

// "valid: 3 of 4 nodes (quorum 3): node-0 node-1 node-2" or the reason.
Status check_receipt(const Bytes& statement, const Bytes& receipt, const Consortium& c,
                     std::string* summary) {
  CUSTOS_ASSIGN_OR_RETURN(auto bundle, cose::parse_receipt_bundle(receipt));
  CUSTOS_ASSIGN_OR_RETURN(cose::ReceiptQuorum check,
                          cose::check_receipt_bundle(bundle, statement, c.keys, c.quorum));
  CUSTOS_RETURN_IF_ERROR(cose::receipt_quorum_status(check, c.names));
  std::string names;
  for (const auto& s : check.signers) names += " " + c.names[s.node];
  *summary = "receipt verified offline: " + std::to_string(check.signers.size()) + " of " +
             std::to_string(check.node_count) + " nodes (quorum " + std::to_string(check.quorum) +
             "):" + names;
  return Status();
}

// What a step did, in a few words.
std::string what(const json& s) {
  const std::string kind = s.value("kind", "");
  const json& p = s.contains("payload") ? s["payload"] : json::object();
  auto rate = [&](const char* field) {
    return p.contains(field) ? " " + number(p[field]) + " mL/h" : std::string();
  };
  if (kind == "order" || kind == "programming") {
    std::string t = kind == "order" ? "order: " : "nurse programming: ";
    t += p.value("drug", "") + " " + (p.contains("dose") ? quantity_text(p["dose"]) : "");
    if (p.contains("rate")) t += " at " + quantity_text(p["rate"]);
    if (p.contains("vtbi_ml")) t += ", VTBI " + number(p["vtbi_ml"]) + " mL";
    return t;
  }
  if (kind == "verification") return "pharmacy verification: " + s.value("event", "");
  if (kind != "device-event") return kind;
  const std::string event = s.value("event", "");
  std::string t = "pump " + event;
  if (event == "alarm" || event == "alarm-cleared") {
    t += " " + p.value("alarm", "");
    if (p.contains("priority")) t += " (" + p.value("priority", "") + ")";
  } else if (p.contains("limit")) {
    t += ": " + p["limit"].value("bound", "") + " limit " +
         number(p["limit"].value("value", json())) + " " + p["limit"].value("unit", "");
    if (p.contains("rate_ml_h")) t += ", programmed" + rate("rate_ml_h");
  } else if (event == "programming") {
    t += ": " + p.value("drug", "") + rate("rate_ml_h");
    if (p.contains("vtbi_ml")) t += ", VTBI " + number(p["vtbi_ml"]) + " mL";
  } else {
    t += rate("rate_ml_h");
  }
  return t;
}

std::string who(const json& signer, const std::string& kind) {
  std::string role = kind == "order"          ? "prescriber"
                     : kind == "verification" ? "pharmacist"
                     : kind == "programming"  ? "nurse"
                     : kind == "device-event" ? "device"
                                              : "signer";
  std::string org = signer.value("org", "");
  const char* of = role == "device" ? " of " : ", ";
  std::string t = signer.value("name", "") + " (" + role + (org.empty() ? "" : of + org) +
                  ", kid " + signer.value("kid", "").substr(0, 16) + ")";
  if (signer.contains("revoked"))
    t += " [key " + signer["revoked"].value("how", "revoked") + " on " +
         signer["revoked"].value("at", "") + "; this entry stays valid]";
  return t;
}

std::string step_file(const json& s) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", s.value("step", 0));
  std::string name = std::string(buf) + "-" + s.value("kind", "step");
  if (s.contains("event") && s.value("kind", "") == "device-event")
    name += "-" + s.value("event", "");
  return name;
}

// Writes, verifies and describes one step's statement and receipt; the
// receipt line is added to `lines`. False when a receipt does not verify.
Result<bool> handle_receipt(const ReportOptions& o, const std::optional<Consortium>& consortium,
                            json& s, std::string* line) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes statement, base64_decode(s.value("statement_base64", "")));
  std::optional<Bytes> receipt;
  if (s.contains("receipt_base64")) {
    CUSTOS_ASSIGN_OR_RETURN(Bytes r, base64_decode(s["receipt_base64"].get<std::string>()));
    receipt = std::move(r);
  }
  if (!o.out.empty()) {
    const std::string base = o.out + "/" + step_file(s);
    CUSTOS_RETURN_IF_ERROR(write_file_atomic(base + ".cose", statement));
    if (receipt) CUSTOS_RETURN_IF_ERROR(write_file_atomic(base + ".receipt", *receipt));
  }
  if (!receipt) {
    *line = "no receipt: " + s.value("receipt_error", "not served");
    s["receipt_check"] = *line;
    return !consortium.has_value();
  }
  if (!consortium) {
    *line = "receipt: " + std::to_string(receipt->size()) +
            " bytes (not verified here; pass --genesis)";
    return true;
  }
  Status ok = check_receipt(statement, *receipt, *consortium, line);
  if (!ok.ok()) *line = "RECEIPT INVALID: " + ok.message();
  s["receipt_check"] = *line;
  return ok.ok();
}

void print_header(const json& r) {
  std::printf("Incident report for order %s: status %s (log size %s%s)\n",
              r.value("order_id", "").c_str(), r.value("status", "").c_str(),
              r["log_size"].dump().c_str(), r.value("truncated", false) ? ", TRUNCATED" : "");
  if (r["order"].is_object()) {
    const json& o = r["order"];
    std::printf("  %s %s at %s, VTBI %s mL, %s, care area %s; patient %s; hospital %s\n",
                o.value("drug", "").c_str(), quantity_text(o["dose"]).c_str(),
                quantity_text(o["rate"]).c_str(), number(o.value("vtbi_ml", json())).c_str(),
                o.value("route", "").c_str(), o.value("care_area", "").c_str(),
                o.value("patient", "").c_str(), o.value("hospital", "").c_str());
  } else {
    std::printf("  no medication order is recorded under this id\n");
  }
}

void print_step(const json& s, const std::string& receipt_line) {
  std::printf("\n%2d  %s  %s\n", s.value("step", 0), s.value("registered_at", "").c_str(),
              what(s).c_str());
  std::printf("    signed by %s\n", who(s["signer"], s.value("kind", "")).c_str());
  if (s.contains("device")) {
    std::string fw = s.contains("firmware")
                         ? "firmware " + s["firmware"].value("version", "") + " (image " +
                               s["firmware"].value("image_sha256", "").substr(0, 16) +
                               ", installed " + s["firmware"].value("since_at", "") + ")"
                         : "firmware not recorded";
    std::printf("    pump %s, %s%s\n", s["device"].get<std::string>().c_str(), fw.c_str(),
                s.contains("drug_library")
                    ? (", drug library " + s["drug_library"].get<std::string>()).c_str()
                    : "");
  }
  std::printf("    entry %s (log index %s)\n", s.value("entry", "").c_str(),
              s["index"].dump().c_str());
  if (!receipt_line.empty()) std::printf("    %s\n", receipt_line.c_str());
}

void print_deviations(const json& r) {
  const json& devs = r["deviations"];
  std::printf("\nDeviations (%zu)%s\n", devs.size(), devs.empty() ? ": none" : "");
  for (const auto& d : devs) {
    const json& p = d["party"];
    std::string party = p.value("role", "") + " " + p.value("name", "");
    if (!p.value("org", "").empty() && p.value("org", "") != p.value("name", ""))
      party += " (" + p.value("org", "") + ")";
    std::printf("  step %-3s %-32s attributed to %s\n           %s\n", d["step"].dump().c_str(),
                d.value("code", "").c_str(), party.c_str(), d.value("detail", "").c_str());
  }
}

Status report(const ReportOptions& o) {
  std::optional<Consortium> consortium;
  if (!o.genesis.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(Consortium c, load_consortium(o.genesis));
    consortium = std::move(c);
  }
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply,
                          client.get("/v1/orders/" + percent_encode(o.order) + "/report"));
  if (!reply.ok()) return reply_error(reply);
  json r = json::parse(reply.body, nullptr, false);
  if (!r.is_object() || !r["steps"].is_array() || !r["deviations"].is_array())
    return error(ErrorCode::kMalformed, "unexpected answer from the report route");
  if (!o.out.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out, ec);
    if (ec) return error(ErrorCode::kIo, o.out + ": " + ec.message());
  }
  bool all_valid = true;
  std::vector<std::string> lines;
  for (json& s : r["steps"]) {
    std::string line;
    CUSTOS_ASSIGN_OR_RETURN(bool valid, handle_receipt(o, consortium, s, &line));
    all_valid = all_valid && valid;
    lines.push_back(line);
  }
  if (!o.out.empty()) CUSTOS_RETURN_IF_ERROR(write_file_atomic(o.out + "/report.json", r.dump(2)));
  if (o.json) {
    std::printf("%s\n", r.dump(2).c_str());
  } else {
    print_header(r);
    for (size_t i = 0; i < r["steps"].size(); ++i) print_step(r["steps"][i], lines[i]);
    print_deviations(r);
    if (!o.out.empty())
      std::printf("\nstatements, receipts and report.json written to %s\n", o.out.c_str());
  }
  if (!all_valid)
    return error(ErrorCode::kBadSignature, "some receipts did not verify against " + o.genesis);
  return Status();
}

}  // namespace

void add_infusion_commands(CLI::App& app) {
  CLI::App* order =
      app.add_subcommand("order", "The infusion chain: orders, verification, pump programming");
  order->require_subcommand(1);

  auto cr = std::make_shared<StepOptions>();
  CLI::App* c = order->add_subcommand("create", "Record a medication order (prescriber's key)");
  c->add_option("--node", cr->node, "Node URL")->capture_default_str();
  c->add_option("--key", cr->key, "Prescriber's private key PEM")->required();
  c->add_option("--order", cr->order, "Order id")->required();
  c->add_option("--patient", cr->patient, "Patient pseudonym: pseudonym:<16-64 hex digits>")
      ->required();
  c->add_option("--drug-code", cr->drug_code, "Drug code (RxNorm, ATC, formulary)");
  add_dosing_options(c, cr->dosing);
  c->add_option("--route", cr->route,
                "intravenous, subcutaneous, epidural, intrathecal, intra-arterial or enteral")
      ->capture_default_str();
  c->add_option("--care-area", cr->care_area, "Care area (drug library profile), e.g. icu")
      ->required();
  c->add_flag("--json", cr->json, "Print JSON");
  c->callback([cr] {
    if (Status s = create_order(*cr); !s.ok()) exit_status() = fail(s);
  });

  auto ve = std::make_shared<StepOptions>();
  CLI::App* v =
      order->add_subcommand("verify", "Record a pharmacy verification (pharmacist's key)");
  v->add_option("--node", ve->node, "Node URL")->capture_default_str();
  v->add_option("--key", ve->key, "Pharmacist's private key PEM")->required();
  v->add_option("--order", ve->order, "Order id")->required();
  v->add_option("--prev", ve->prev, "Entry id of the order (default: asked from the node)");
  v->add_option("--outcome", ve->outcome, "verified or rejected")->capture_default_str();
  v->add_option("--reason", ve->reason, "Reason (never about the patient's identity)");
  v->add_flag("--json", ve->json, "Print JSON");
  v->callback([ve] {
    if (Status s = verify_order(*ve); !s.ok()) exit_status() = fail(s);
  });

  auto pr = std::make_shared<StepOptions>();
  CLI::App* p =
      order->add_subcommand("program", "Record the nurse's pump programming (nurse's key)");
  p->add_option("--node", pr->node, "Node URL")->capture_default_str();
  p->add_option("--key", pr->key, "Nurse's private key PEM")->required();
  p->add_option("--order", pr->order, "Order id")->required();
  p->add_option("--prev", pr->prev,
                "Entry id of the verification (default: the latest) or of the order");
  p->add_option("--device", pr->device, "Pump id")->required();
  p->add_option("--drug-library", pr->drug_library, "Drug library version on the pump")->required();
  add_dosing_options(p, pr->dosing);
  p->add_flag("--json", pr->json, "Print JSON");
  p->callback([pr] {
    if (Status s = program_pump(*pr); !s.ok()) exit_status() = fail(s);
  });

  auto sh = std::make_shared<StepOptions>();
  CLI::App* s = order->add_subcommand("show", "Show an order and its status");
  s->add_option("--node", sh->node, "Node URL")->capture_default_str();
  s->add_option("order", sh->order, "Order id")->required();
  s->add_flag("--json", sh->json, "Print JSON");
  s->callback([sh] {
    if (Status st = show_order(sh->node, sh->order, sh->json); !st.ok()) exit_status() = fail(st);
  });

  auto rep = std::make_shared<ReportOptions>();
  CLI::App* r = app.add_subcommand(
      "report", "The incident report of one infusion: timeline, deviations, receipts");
  r->add_option("--node", rep->node, "Node URL")->capture_default_str();
  r->add_option("order", rep->order, "Order id")->required();
  r->add_option("--out", rep->out,
                "Directory to write every step's statement (.cose), receipt (.receipt) and "
                "report.json");
  r->add_option("--genesis", rep->genesis,
                "Genesis file: verify every receipt offline against a quorum of its nodes");
  r->add_flag("--json", rep->json, "Print the report as JSON");
  r->callback([rep] {
    if (Status st = report(*rep); !st.ok()) exit_status() = fail(st);
  });
}

}  // namespace custos::cli
