// `custos device|firmware|advisory|drug-library ...`: device accountability
// from the command line (docs/domain.md, "Devices, firmware and advisories";
// docs/api.md, "Devices"). Statements are signed with the key given by --key
// (an engineer's, a regulator's, or the device's own key file): iss = the
// key's registered name, sequence = the node's last accepted + 1. Reads print
// text for people, or the API's JSON with --json.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "cli/signing.h"
#include "codec/cbor.h"
#include "codec/cbor_json.h"
#include "core/file.h"
#include "core/limits.h"
#include "crypto/hash.h"
#include "domain/model.h"

namespace custos::cli {

namespace {

using nlohmann::json;

// Firmware images and drug libraries are hashed in chunks of this size.
constexpr size_t kHashChunkBytes = 1 << 20;
// Column widths are capped so one long value does not push the rest away.
constexpr size_t kColumnBytesMax = 48;

// --- Plumbing ---

struct Conn {
  std::string node = kDefaultNodeUrl;
  bool json = false;
};

void add_conn(CLI::App* cmd, Conn& c) {
  cmd->add_option("--node", c.node, "Node URL")->capture_default_str();
  cmd->add_flag("--json", c.json, "Print the node's JSON answer");
}

void run(CLI::App* cmd, std::function<Status()> f) {
  // A value of an unexpected type in the node's answer throws; main()
  // turns that into an error message and an exit code.
  cmd->callback([f = std::move(f)] {
    if (Status s = f(); !s.ok()) exit_status() = fail(s);
  });
}

// A subcommand with --node and --json that runs `action` on its options.
// The options are shared: CLI11 fills them when it parses, the callback
// reads them later.
template <typename Options>
CLI::App* add_command(CLI::App* parent, const char* name, const char* help,
                      std::shared_ptr<Options> o, Status (*action)(const Options&)) {
  CLI::App* cmd = parent->add_subcommand(name, help);
  add_conn(cmd, o->c);
  run(cmd, [o, action] { return action(*o); });
  return cmd;
}

// --cursor and --limit, the same on every paged read.
void add_paging(CLI::App* cmd, std::string& cursor, size_t& limit, const char* limit_help) {
  cmd->add_option("--cursor", cursor, "Continue from a previous page");
  cmd->add_option("--limit", limit, limit_help)->capture_default_str();
}

Result<json> fetch(NodeClient& client, const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get(path));
  if (!reply.ok()) return reply_error(reply);
  json j = json::parse(reply.body, nullptr, false);
  if (j.is_discarded()) return error(ErrorCode::kMalformed, "the node answered with invalid JSON");
  return j;
}

Result<json> fetch(const Conn& c, const std::string& path) {
  NodeClient client(c.node);
  return fetch(client, path);
}

// The --json form of every command: the node's answer, indented. Returns
// whether it printed it (then the text form is skipped).
bool printed_as_json(const Conn& c, const json& answer) {
  if (c.json) std::printf("%s\n", answer.dump(2).c_str());
  return c.json;
}

// "?a=1&b=x" from the pairs whose value is not empty.
std::string query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    q += (q.empty() ? "?" : "&") + k + "=" + percent_encode(v);
  }
  return q;
}

// j[field] for reading: a null value when j is not an object or lacks it
// (the node's answer is outside input; nothing here may assume its shape).
const json& at(const json& j, const char* field) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(field);
  return it == j.end() ? kNull : *it;
}

std::string str(const json& j, const char* field, const std::string& fallback = "") {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return fallback;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// "2026-11-30T05:30:00.123Z" -> "2026-11-30 05:30:00.123Z": easier to read.
std::string when(const json& j, const char* field) {
  std::string t = str(j, field);
  if (t.size() > 10 && t[10] == 'T') t[10] = ' ';
  return t;
}

std::string joined(const json& list, const char* sep = ", ") {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& v : list)
    out += (out.empty() ? "" : sep) + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

// "sm-biomed (biomed, st-mary)"
std::string signer_text(const json& s) {
  std::string name = str(s, "name", str(s, "kid").substr(0, 16));
  std::string detail = joined(at(s, "roles"));
  if (s.contains("org")) detail += (detail.empty() ? "" : ", ") + str(s, "org");
  return detail.empty() ? name : name + " (" + detail + ")";
}

std::string evidence_text(const json& e) {
  return when(e, "registered_at") + " (#" + str(e, "index") + ", " + signer_text(at(e, "signer")) +
         ")";
}

using Rows = std::vector<std::vector<std::string>>;

// Prints rows as aligned columns (the last column is not padded).
void print_table(const Rows& rows) {
  if (rows.empty()) return;
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i + 1 < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], std::min(row[i].size(), kColumnBytesMax));
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(width[i] + 2 - std::min(row[i].size(), width[i] + 1), ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

void print_more(const json& page, const std::string& hint) {
  if (page.contains("next_cursor") && at(page, "next_cursor").is_string())
    std::printf("(more: %s --cursor %s)\n", hint.c_str(),
                at(page, "next_cursor").get<std::string>().c_str());
}

// One page of a list: its rows under their header (rows[0]), or `none` when
// the page holds no rows, then how to ask for the next page (`more_hint` is
// the command that continues it).
void print_page(const Rows& rows, const std::string& none, const json& page,
                const std::string& more_hint) {
  if (rows.size() == 1)
    std::printf("%s\n", none.c_str());
  else
    print_table(rows);
  print_more(page, more_hint);
}

// "ADV-1 (high); ADV-2 (low)", each with " fixed in <version>" if asked.
std::string advisories_text(const json& advisories, bool with_fix) {
  std::string out;
  for (const auto& a : advisories) {
    out += (out.empty() ? "" : "; ") + str(a, "id") + " (" + str(a, "severity") + ")";
    if (with_fix && a.contains("fixed_in")) out += " fixed in " + str(a, "fixed_in");
  }
  return out.empty() ? "none" : out;
}

// SHA-256 of a file, read in chunks (firmware images can be large).
Result<Hash256> hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return error(ErrorCode::kInvalidArgument, "cannot read " + path);
  crypto::Sha256 h;
  std::vector<char> buf(kHashChunkBytes);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(
        ByteView(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount())));
  }
  if (in.bad()) return error(ErrorCode::kIo, "error reading " + path);
  return h.finish();
}

// Exactly one of a file to hash and a hex digest.
Result<Hash256> digest_option(const std::string& file, const std::string& hex,
                              const std::string& what) {
  if (file.empty() == hex.empty())
    return error(ErrorCode::kInvalidArgument,
                 "give exactly one of --" + what + " and --" + what + "-sha256");
  if (!file.empty()) return hash_file(file);
  auto h = hash_from_hex(hex);
  if (!h.ok())
    return error(ErrorCode::kInvalidArgument, "--" + what + "-sha256 must be 64 hex characters");
  return h;
}

// A statement payload built field by field; empty optional fields are left out.
class Payload {
 public:
  Payload& text(const char* k, const std::string& v) {
    m_.emplace_back(cbor::text(k), cbor::text(v));
    return *this;
  }
  Payload& text_if(const char* k, const std::string& v) { return v.empty() ? *this : text(k, v); }
  Payload& digest(const char* k, const Hash256& v) {
    m_.emplace_back(cbor::text(k), cbor::Value::bytes(ByteView(v)));
    return *this;
  }
  Payload& bytes(const char* k, const Bytes& v) {
    m_.emplace_back(cbor::text(k), cbor::Value::bytes(v));
    return *this;
  }
  Payload& texts_if(const char* k, const std::vector<std::string>& v) {
    if (v.empty()) return *this;
    cbor::Array a;
    for (const auto& t : v) a.push_back(cbor::text(t));
    m_.emplace_back(cbor::text(k), cbor::Value::array(std::move(a)));
    return *this;
  }
  Payload& value(const char* k, cbor::Value v) {
    m_.emplace_back(cbor::text(k), std::move(v));
    return *this;
  }
  cbor::Value build() { return cbor::Value::map(std::move(m_)); }

 private:
  cbor::Map m_;
};

// Signs with `key_path`, submits, and prints the registration and its flags.
Status submit(const Conn& c, const std::string& key_path, std::string_view type,
              const std::string& subject, cbor::Value payload, const std::string& message) {
  NodeClient client(c.node);
  CUSTOS_ASSIGN_OR_RETURN(Bytes statement, sign_admin_statement(client, key_path, std::string(type),
                                                                subject, cbor::encode(payload)));
  CUSTOS_ASSIGN_OR_RETURN(
      HttpReply reply, client.post("/v1/entries", std::string(statement.begin(), statement.end()),
                                   "application/cose"));
  if (!reply.ok()) return reply_error(reply);
  json doc = json::parse(reply.body, nullptr, false);
  if (printed_as_json(c, doc)) return Status();
  std::printf("%s: entry %s at log index %s\n", message.c_str(), str(doc, "id", "?").c_str(),
              str(doc, "index", "?").c_str());
  for (const auto& f : doc.value("flags", json::array()))
    std::printf("  flag: %s\n", f.get<std::string>().c_str());
  return Status();
}

std::string path_id(const std::string& id) {
  return percent_encode(id);
}

// --- device: statements ---

struct RegisterOptions {
  Conn c;
  std::string key, device_key, id, device_class, model, di, serial, lot, manufactured, expires;
  std::string fw_version, fw_image, fw_image_sha256;
};

Status device_register(const RegisterOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey device_key, load_public_key(o.device_key));
  Payload udi;
  udi.text("di", o.di)
      .text("serial", o.serial)
      .text_if("lot", o.lot)
      .text_if("manufactured", o.manufactured)
      .text_if("expires", o.expires);
  Payload p;
  p.text("device", o.id)
      .text("class", o.device_class)
      .text("model", o.model)
      .value("udi", udi.build())
      .bytes("key", device_key.spki_der());
  if (!o.fw_version.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(Hash256 image,
                            digest_option(o.fw_image, o.fw_image_sha256, "firmware-image"));
    p.value("firmware",
            Payload().text("version", o.fw_version).digest("image_sha256", image).build());
  } else if (!o.fw_image.empty() || !o.fw_image_sha256.empty()) {
    return error(ErrorCode::kInvalidArgument, "--firmware-image needs --firmware-version");
  }
  return submit(o.c, o.key, domain::kTypeDeviceRegister, "device/" + o.id, p.build(),
                "registered device " + o.id + " (kid " + to_hex(device_key.kid()) + ")");
}

struct DeviceStatementOptions {
  Conn c;
  std::string key, id;
  std::string to;                   // transfer
  std::string care_area, location;  // install
  std::string kind, outcome, note;  // maintain
  std::string reason;               // decommission
};

Status device_transfer(const DeviceStatementOptions& o) {
  return submit(o.c, o.key, domain::kTypeDeviceCustody, "device/" + o.id,
                Payload().text("device", o.id).text("to", o.to).build(),
                "custody of " + o.id + " handed to " + o.to);
}

Status device_install(const DeviceStatementOptions& o) {
  return submit(o.c, o.key, domain::kTypeDeviceInstall, "device/" + o.id,
                Payload()
                    .text("device", o.id)
                    .text("care_area", o.care_area)
                    .text("location", o.location)
                    .build(),
                o.id + " installed in " + o.care_area + ", " + o.location);
}

Status device_maintain(const DeviceStatementOptions& o) {
  return submit(o.c, o.key, domain::kTypeDeviceMaintenance, "device/" + o.id,
                Payload()
                    .text("device", o.id)
                    .text("kind", o.kind)
                    .text("outcome", o.outcome)
                    .text_if("note", o.note)
                    .build(),
                "maintenance of " + o.id + " recorded");
}

Status device_decommission(const DeviceStatementOptions& o) {
  return submit(o.c, o.key, domain::kTypeDeviceDecommission, "device/" + o.id,
                Payload().text("device", o.id).text("reason", o.reason).build(),
                o.id + " decommissioned (its key is revoked)");
}

// A file, or standard input for "-" (a gateway piping events), at most one
// statement's size.
Result<Bytes> read_input(const std::string& path) {
  if (path != "-") return read_file(path, limits::kStatementBytesMax);
  std::string text(limits::kStatementBytesMax + 1, '\0');
  std::cin.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(std::cin.gcount()));
  if (text.size() > limits::kStatementBytesMax)
    return error(ErrorCode::kTooLarge, "standard input is larger than a statement");
  return to_bytes(text);
}

struct EventOptions {
  Conn c;
  std::string key, payload_path;
};

Status device_event(const EventOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes text, read_input(o.payload_path));
  json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (!doc.is_object())
    return error(ErrorCode::kInvalidArgument, o.payload_path + ": not a JSON object");
  CUSTOS_ASSIGN_OR_RETURN(cbor::Value payload, cbor::from_json(doc));
  const std::string event = doc.value("event", std::string("event"));
  return submit(o.c, o.key, domain::kTypeDeviceEvent, "event/" + event, std::move(payload),
                "device event " + event + " registered");
}

// --- device: reads ---

struct ShowOptions {
  Conn c;
  std::string id;
};

Status device_show(const ShowOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(json d, fetch(o.c, "/v1/devices/" + path_id(o.id)));
  if (printed_as_json(o.c, d)) return Status();
  std::printf("%s  %s %s  (%s)\n", str(d, "id").c_str(), str(d, "class").c_str(),
              str(d, "model").c_str(), str(d, "status").c_str());
  Rows rows;
  rows.push_back({"  UDI", str(at(d, "udi"), "hrf")});
  rows.push_back({"  maker", str(d, "maker")});
  rows.push_back({"  holder", str(d, "holder")});
  rows.push_back({"  installed", d.contains("care_area")
                                     ? str(d, "care_area") + ", " + str(d, "location")
                                     : "no"});
  if (d.contains("firmware")) {
    const json& f = at(d, "firmware");
    std::string rel =
        at(d, "release").is_null() ? "not a release of " + str(d, "maker") : "released";
    if (!at(d, "release").is_null() &&
        str(at(d, "release"), "image_sha256") != str(f, "image_sha256"))
      rel = "image differs from the release";
    rows.push_back({"  firmware", str(f, "version") + " since " + when(f, "since") + " (image " +
                                      str(f, "image_sha256").substr(0, 16) + ", " + rel + ")"});
  } else {
    rows.push_back({"  firmware", "none reported"});
  }
  if (!at(d, "key").is_null())
    rows.push_back({"  key", str(at(d, "key"), "kid") + " (" + str(at(d, "key"), "status") + ")"});
  rows.push_back({"  advisories", advisories_text(at(d, "advisories"), true)});
  print_table(rows);
  return Status();
}

struct TimelineOptions {
  Conn c;
  std::string id, from, to, cursor;
  size_t limit = 100;
  bool newest_first = false;
};

Status device_timeline(const TimelineOptions& o) {
  const std::string path = "/v1/devices/" + path_id(o.id) + "/timeline" +
                           query({{"from", o.from},
                                  {"to", o.to},
                                  {"cursor", o.cursor},
                                  {"limit", std::to_string(o.limit)},
                                  {"order", o.newest_first ? "desc" : ""}});
  CUSTOS_ASSIGN_OR_RETURN(json page, fetch(o.c, path));
  if (printed_as_json(o.c, page)) return Status();
  Rows rows{{"TIME", "INDEX", "SIGNER", "WHAT", "FLAGS"}};
  for (const auto& e : at(page, "entries")) {
    std::string flags = joined(e.value("flags", json::array()), "; ");
    if (e.contains("sequence_gap"))
      flags += (flags.empty() ? "" : "; ") + std::string("sequence-gap");
    rows.push_back({when(e, "registered_at"), "#" + str(e, "index"), signer_text(at(e, "signer")),
                    str(e, "summary"), flags});
  }
  print_page(rows, "no entries for " + o.id + " in this range", page,
             "custos device timeline " + o.id);
  return Status();
}

struct StateOptions {
  Conn c;
  std::string id, at, evidence_dir;
};

// The entries a state answer rests on, by what they show.
std::vector<std::pair<std::string, json>> evidence_of(const json& s) {
  std::vector<std::pair<std::string, json>> out{{"holder", at(s, "holder_since")}};
  if (!at(s, "installation").is_null())
    out.emplace_back("installation", at(at(s, "installation"), "since"));
  if (s.contains("decommissioned_by"))
    out.emplace_back("decommissioning", at(s, "decommissioned_by"));
  if (!at(s, "firmware").is_null())
    out.emplace_back("firmware", at(at(s, "firmware"), "installed"));
  const json& reported = at(at(s, "drug_library"), "reported");
  if (!reported.is_null()) out.emplace_back("drug-library", at(reported, "reported"));
  return out;
}

// Writes each evidence entry's statement (<name>.cose) and receipt bundle
// (<name>.receipt) into `dir`, for `custos verify` anywhere, offline.
Status save_evidence(NodeClient& client, const json& s, const std::string& dir, bool print) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error(ErrorCode::kIo, "cannot create " + dir + ": " + ec.message());
  for (const auto& [what, e] : evidence_of(s)) {
    // The node's answer names the files and the URLs: only an entry id and a
    // log index may reach them, never a path.
    const std::string id = str(e, "entry");
    if (!hash_from_hex(id).ok() || !at(e, "index").is_number_unsigned())
      return error(ErrorCode::kMalformed,
                   "the node named evidence that is not an entry id and index");
    const std::string base =
        dir + "/" + std::to_string(at(e, "index").get<uint64_t>()) + "-" + what;
    CUSTOS_ASSIGN_OR_RETURN(HttpReply st, client.get("/v1/entries/" + id, "application/cose"));
    if (!st.ok()) return reply_error(st);
    CUSTOS_ASSIGN_OR_RETURN(HttpReply rc,
                            client.get("/v1/entries/" + id + "/receipt", "application/cbor"));
    if (!rc.ok()) return reply_error(rc);
    CUSTOS_RETURN_IF_ERROR(write_file_atomic(base + ".cose", st.body));
    CUSTOS_RETURN_IF_ERROR(write_file_atomic(base + ".receipt", rc.body));
    if (print)
      std::printf("  evidence      %s.cose and .receipt (%s)\n", base.c_str(), what.c_str());
  }
  return Status();
}

void print_firmware_at(const json& f) {
  if (f.is_null()) {
    std::printf("  firmware      none reported by then\n");
    return;
  }
  std::printf("  firmware      %s (image %s), %s %s\n", str(f, "version").c_str(),
              str(f, "image_sha256").substr(0, 16).c_str(),
              f.value("from_registration", false) ? "reported at registration" : "installed",
              evidence_text(at(f, "installed")).c_str());
  std::string rel;
  if (!f.value("released", false))
    rel = "not a release of the maker";
  else
    rel = std::string(f.value("released_at_time", false) ? "released before then"
                                                         : "released only later") +
          (f.value("image_matches_release", false) ? ", image matches" : ", IMAGE DIFFERS") +
          (f.value("approved_for_model", false) ? ", approved for the model"
                                                : ", NOT approved for the model");
  std::printf("  release       %s\n", rel.c_str());
  std::string now;
  for (const auto& a : at(f, "advisories_now"))
    now += (now.empty() ? "" : "; ") + str(a, "id") + " (" + str(a, "severity") + ", published " +
           when(a, "published_at") + ")";
  std::string then = joined(at(f, "advisories_at_time"));
  std::printf("  advisories    then: %s; now: %s\n", then.empty() ? "none" : then.c_str(),
              now.empty() ? "none" : now.c_str());
  if (!at(f, "flags").empty())
    std::printf("  flagged       %s\n", joined(at(f, "flags"), "; ").c_str());
}

Status device_state(const StateOptions& o) {
  NodeClient client(o.c.node);
  CUSTOS_ASSIGN_OR_RETURN(
      json s, fetch(client, "/v1/devices/" + path_id(o.id) + "/state" + query({{"at", o.at}})));
  if (printed_as_json(o.c, s))
    return o.evidence_dir.empty() ? Status() : save_evidence(client, s, o.evidence_dir, false);
  // The log's size at that time; its last entry is one below (none on an
  // empty log). Whatever the node sent, never a wrapped number.
  const json& size_at = at(s, "log_size_at");
  const uint64_t log_size_at = size_at.is_number_unsigned() ? size_at.get<uint64_t>() : 0;
  const std::string upto =
      log_size_at == 0 ? "no entries yet" : "entries up to #" + std::to_string(log_size_at - 1);
  std::printf("%s (%s %s, maker %s) at %s, %s\n", str(s, "device").c_str(), str(s, "class").c_str(),
              str(s, "model").c_str(), str(s, "maker").c_str(), when(s, "at").c_str(),
              upto.c_str());
  std::printf("  holder        %s since %s\n", str(s, "holder").c_str(),
              evidence_text(at(s, "holder_since")).c_str());
  const json& inst = at(s, "installation");
  if (inst.is_null())
    std::printf("  installed     no\n");
  else
    std::printf("  installed     %s, %s since %s\n", str(inst, "care_area").c_str(),
                str(inst, "location").c_str(), evidence_text(at(inst, "since")).c_str());
  if (s.value("decommissioned", false))
    std::printf("  status        decommissioned %s\n",
                evidence_text(at(s, "decommissioned_by")).c_str());
  print_firmware_at(at(s, "firmware"));
  const json& lib = at(s, "drug_library");
  std::printf("  drug library  device reported %s; %s's library then: %s\n",
              at(lib, "reported").is_null()
                  ? "none"
                  : (str(at(lib, "reported"), "version") + " at " +
                     when(at(at(lib, "reported"), "reported"), "registered_at"))
                        .c_str(),
              str(s, "holder").c_str(),
              at(lib, "hospital_current").is_null()
                  ? "none"
                  : (str(at(lib, "hospital_current"), "version") + " since " +
                     when(at(lib, "hospital_current"), "since"))
                        .c_str());
  if (at(lib, "matches").is_boolean() && !at(lib, "matches").get<bool>())
    std::printf("  WARNING       the device's library differs from the hospital's\n");
  if (!o.evidence_dir.empty()) return save_evidence(client, s, o.evidence_dir, true);
  return Status();
}

struct ListOptions {
  Conn c;
  std::string holder, maker, device_class, cursor;
  size_t limit = 100;
};

Status device_list(const ListOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(json page,
                          fetch(o.c, "/v1/devices" + query({{"holder", o.holder},
                                                            {"maker", o.maker},
                                                            {"class", o.device_class},
                                                            {"cursor", o.cursor},
                                                            {"limit", std::to_string(o.limit)}})));
  if (printed_as_json(o.c, page)) return Status();
  Rows rows{{"ID", "CLASS", "MODEL", "HOLDER", "CARE AREA", "LOCATION", "FIRMWARE", "STATUS"}};
  for (const auto& d : at(page, "devices")) {
    rows.push_back({str(d, "id"), str(d, "class"), str(d, "model"), str(d, "holder"),
                    str(d, "care_area", "-"), str(d, "location", "-"),
                    d.contains("firmware") ? str(at(d, "firmware"), "version") : "-",
                    str(d, "status")});
  }
  print_page(rows, "no devices", page, "custos device list");
  return Status();
}

// --- firmware ---

struct ReleaseOptions {
  Conn c;
  std::string key, version, image, image_sha256, sbom, sbom_sha256;
  std::vector<std::string> models;
};

Status firmware_release(const ReleaseOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(Hash256 image, digest_option(o.image, o.image_sha256, "image"));
  CUSTOS_ASSIGN_OR_RETURN(Hash256 sbom, digest_option(o.sbom, o.sbom_sha256, "sbom"));
  Payload p;
  p.text("version", o.version)
      .digest("image_sha256", image)
      .digest("sbom_sha256", sbom)
      .texts_if("models", o.models);
  return submit(o.c, o.key, domain::kTypeFirmwareRelease, "firmware/" + o.version, p.build(),
                "released firmware " + o.version + " (image " + to_hex(image).substr(0, 16) + ")");
}

struct FirmwareInstallOptions {
  Conn c;
  std::string key, version, image, image_sha256;
};

Status firmware_install(const FirmwareInstallOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(Hash256 image, digest_option(o.image, o.image_sha256, "image"));
  return submit(o.c, o.key, domain::kTypeFirmwareInstall, "firmware/" + o.version,
                Payload().text("version", o.version).digest("image_sha256", image).build(),
                "firmware " + o.version + " installation recorded");
}

struct FirmwareReadOptions {
  Conn c;
  std::string maker, version, cursor;
  size_t limit = 100;
};

Status firmware_list(const FirmwareReadOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(
      json page, fetch(o.c, "/v1/firmware/" + path_id(o.maker) +
                                query({{"cursor", o.cursor}, {"limit", std::to_string(o.limit)}})));
  if (printed_as_json(o.c, page)) return Status();
  Rows rows{{"VERSION", "INDEX", "MODELS", "IMAGE SHA-256"}};
  for (const auto& r : at(page, "releases"))
    rows.push_back({str(r, "version"), "#" + str(r, "index"), joined(at(r, "models")),
                    str(r, "image_sha256")});
  print_page(rows, o.maker + " has released no firmware", page, "custos firmware list " + o.maker);
  return Status();
}

Status firmware_show(const FirmwareReadOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(
      json r, fetch(o.c, "/v1/firmware/" + path_id(o.maker) + "/" + path_id(o.version)));
  if (printed_as_json(o.c, r)) return Status();
  std::printf("%s firmware %s\n", str(r, "maker").c_str(), str(r, "version").c_str());
  print_table(
      {{"  released", evidence_text(at(r, "released"))},
       {"  image", str(r, "image_sha256")},
       {"  SBOM", str(r, "sbom_sha256")},
       {"  models", joined(at(r, "models"))},
       {"  running on", str(r, "devices_running") +
                            (r.value("devices_running_capped", false) ? "+" : "") + " device(s)"},
       {"  advisories", advisories_text(at(r, "advisories"), false)}});
  return Status();
}

// --- advisories ---

struct AdvisoryOptions {
  Conn c;
  std::string key, id, maker, severity, fixed_in, summary, cursor;
  std::vector<std::string> versions, models, cves;
  size_t limit = 1000;
};

Status advisory_publish(const AdvisoryOptions& o) {
  Payload p;
  p.text("id", o.id)
      .text("maker", o.maker)
      .texts_if("versions", o.versions)
      .texts_if("models", o.models)
      .texts_if("cves", o.cves)
      .text("severity", o.severity)
      .text_if("fixed_in", o.fixed_in)
      .text_if("summary", o.summary);
  return submit(o.c, o.key, domain::kTypeAdvisory, "advisory/" + o.id, p.build(),
                "published advisory " + o.id);
}

std::string advisory_line(const json& a) {
  std::string s = str(a, "id") + " (" + str(a, "severity") + "): " + str(a, "maker");
  if (!at(a, "models").empty()) s += " " + joined(at(a, "models"));
  s += " firmware " + joined(at(a, "versions"));
  if (a.contains("fixed_in")) s += ", fixed in " + str(a, "fixed_in");
  return s;
}

Status advisory_show(const AdvisoryOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(json a, fetch(o.c, "/v1/advisories/" + path_id(o.id)));
  if (printed_as_json(o.c, a)) return Status();
  std::printf("%s\n", advisory_line(a).c_str());
  print_table({{"  published", evidence_text(at(a, "published")) + " by " + str(a, "issuer")},
               {"  CVEs", at(a, "cves").empty() ? "none named" : joined(at(a, "cves"))},
               {"  fix", a.contains("fixed_in")
                             ? str(a, "fixed_in") +
                                   (at(a, "fix").is_null() ? " (not released yet)" : " (released)")
                             : "none named"}});
  return Status();
}

Status advisory_exposure(const AdvisoryOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(
      json e, fetch(o.c, "/v1/advisories/" + path_id(o.id) + "/exposure" +
                             query({{"cursor", o.cursor}, {"limit", std::to_string(o.limit)}})));
  if (printed_as_json(o.c, e)) return Status();
  std::printf("%s\n%s device(s) exposed\n", advisory_line(at(e, "advisory")).c_str(),
              str(e, "device_count").c_str());
  for (const auto& h : at(e, "holders")) {
    std::printf("\n%s (%s%s)\n", str(h, "holder").c_str(), str(h, "kind", "unknown").c_str(),
                h.contains("name") ? (", " + str(h, "name")).c_str() : "");
    Rows rows;
    for (const auto& d : at(h, "devices"))
      rows.push_back(
          {"  " + str(d, "id"), str(d, "model"), str(d, "care_area", "not installed"),
           str(d, "location", "-"),
           "firmware " + str(d, "firmware_version") + " since " + when(d, "firmware_since")});
    print_table(rows);
  }
  print_more(e, "custos advisory exposure " + o.id);
  return Status();
}

Status advisory_list(const AdvisoryOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(
      json page, fetch(o.c, "/v1/advisories" + query({{"maker", o.maker},
                                                      {"cursor", o.cursor},
                                                      {"limit", std::to_string(o.limit)}})));
  if (printed_as_json(o.c, page)) return Status();
  Rows rows{{"ID", "SEVERITY", "MAKER", "VERSIONS", "PUBLISHED", "BY"}};
  for (const auto& a : at(page, "advisories"))
    rows.push_back({str(a, "id"), str(a, "severity"), str(a, "maker"), joined(at(a, "versions")),
                    when(a, "published_at"), str(a, "issuer")});
  print_page(rows, "no advisories", page, "custos advisory list");
  return Status();
}

// --- drug libraries ---

struct LibraryOptions {
  Conn c;
  std::string key, version, file, sha256, hospital;
  std::vector<std::string> care_areas;
};

Status library_release(const LibraryOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(Hash256 digest, digest_option(o.file, o.sha256, "file"));
  return submit(o.c, o.key, domain::kTypeDrugLibrary, "drug-library/" + o.version,
                Payload()
                    .text("version", o.version)
                    .digest("sha256", digest)
                    .texts_if("care_areas", o.care_areas)
                    .build(),
                "released drug library " + o.version);
}

Status library_show(const LibraryOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(json l, fetch(o.c, "/v1/drug-libraries/" + path_id(o.hospital)));
  if (printed_as_json(o.c, l)) return Status();
  std::printf("%s: drug library %s since %s\n", o.hospital.c_str(),
              str(at(l, "current"), "version").c_str(), when(at(l, "current"), "since").c_str());
  Rows rows{{"  VERSION", "RELEASED", "SHA-256"}};
  for (const auto& h : at(l, "history"))
    rows.push_back({"  " + str(h, "version"), evidence_text(at(h, "released")), str(h, "sha256")});
  print_table(rows);
  return Status();
}

// --- Command tree ---

void add_device_statements(CLI::App* device) {
  auto reg = std::make_shared<RegisterOptions>();
  CLI::App* r = add_command(device, "register",
                            "Register a device with its own key (signed by a maker's engineer)",
                            reg, device_register);
  r->add_option("--key", reg->key, "Signer's private key PEM (biomed or org-admin of a maker)")
      ->required();
  r->add_option("--device-key", reg->device_key, "The device's public (or private) key PEM")
      ->required();
  r->add_option("--id", reg->id, "Device id")->required();
  r->add_option(
       "--class", reg->device_class,
       "infusion-pump, patient-monitor, ventilator, glucose-monitor, syringe-pump or other")
      ->required();
  r->add_option("--model", reg->model, "Model name")->required();
  r->add_option("--di", reg->di, "UDI device identifier: GTIN-14, GS1 AI (01)")->required();
  r->add_option("--serial", reg->serial, "Serial number, GS1 AI (21)")->required();
  r->add_option("--lot", reg->lot, "Lot, GS1 AI (10)");
  r->add_option("--manufactured", reg->manufactured, "Manufacturing date YYYY-MM-DD, GS1 AI (11)");
  r->add_option("--expires", reg->expires, "Expiry date YYYY-MM-DD, GS1 AI (17)");
  r->add_option("--firmware-version", reg->fw_version,
                "Firmware the device leaves the factory with");
  r->add_option("--firmware-image", reg->fw_image, "Its image file (hashed here)");
  r->add_option("--firmware-image-sha256", reg->fw_image_sha256, "... or its SHA-256 in hex");

  auto tr = std::make_shared<DeviceStatementOptions>();
  CLI::App* t = add_command(
      device, "transfer", "Hand custody of a device to another organisation (signed by the holder)",
      tr, device_transfer);
  t->add_option("--key", tr->key, "Signer's private key PEM (biomed or org-admin of the holder)")
      ->required();
  t->add_option("--id", tr->id, "Device id")->required();
  t->add_option("--to", tr->to, "Organisation receiving it (maker, distributor or hospital)")
      ->required();

  auto in = std::make_shared<DeviceStatementOptions>();
  CLI::App* i = add_command(device, "install", "Record where a hospital installs a device", in,
                            device_install);
  i->add_option("--key", in->key,
                "Signer's private key PEM (biomed or org-admin of the holding hospital)")
      ->required();
  i->add_option("--id", in->id, "Device id")->required();
  i->add_option("--care-area", in->care_area, "Care area, e.g. icu")->required();
  i->add_option("--location", in->location, "Location, e.g. \"bed 4\"")->required();

  auto mt = std::make_shared<DeviceStatementOptions>();
  CLI::App* m =
      add_command(device, "maintain", "Record maintenance of a device (by its holder or its maker)",
                  mt, device_maintain);
  m->add_option("--key", mt->key, "Signer's private key PEM")->required();
  m->add_option("--id", mt->id, "Device id")->required();
  m->add_option("--kind", mt->kind, "preventive, repair, calibration, inspection or software")
      ->required();
  m->add_option("--outcome", mt->outcome, "pass, fail or not-applicable")->required();
  m->add_option("--note", mt->note, "A short note (never about a patient)");

  auto dc = std::make_shared<DeviceStatementOptions>();
  CLI::App* d = add_command(device, "decommission",
                            "Take a device out of service and revoke its key (by its holder)", dc,
                            device_decommission);
  d->add_option("--key", dc->key, "Signer's private key PEM")->required();
  d->add_option("--id", dc->id, "Device id")->required();
  d->add_option("--reason", dc->reason, "Why")->required();

  auto ev = std::make_shared<EventOptions>();
  CLI::App* e = device->add_subcommand(
      "event", "Sign one device event with the device's own key and submit it");
  e->add_option("--node", ev->c.node, "Node URL")->capture_default_str();
  e->add_option("--key", ev->key, "The device's private key PEM")->required();
  e->add_option("--json", ev->payload_path,
                "The event as a JSON object (- for stdin), e.g. {\"event\": \"alarm\", \"alarm\": "
                "\"occlusion-downstream\"}")
      ->required();
  e->add_flag("--print-json", ev->c.json, "Print the node's JSON answer");
  run(e, [ev] { return device_event(*ev); });
}

void add_device_reads(CLI::App* device) {
  auto sh = std::make_shared<ShowOptions>();
  CLI::App* s = add_command(device, "show",
                            "Show a device: UDI, holder, installation, firmware, key, advisories",
                            sh, device_show);
  s->add_option("id", sh->id, "Device id")->required();

  auto tl = std::make_shared<TimelineOptions>();
  CLI::App* t = add_command(device, "timeline",
                            "A device's signed history: time, signer, what happened, flags", tl,
                            device_timeline);
  t->add_option("id", tl->id, "Device id")->required();
  t->add_option("--from", tl->from, "From (inclusive): ms since 1970 or 2026-11-23T10:00:00Z");
  t->add_option("--to", tl->to, "To (exclusive)");
  add_paging(t, tl->cursor, tl->limit, "Entries per page (1 to 500)");
  t->add_flag("--newest-first", tl->newest_first, "Newest entries first");

  auto st = std::make_shared<StateOptions>();
  CLI::App* a = add_command(device, "state", "What a device ran and where it was at a given time",
                            st, device_state);
  a->add_option("id", st->id, "Device id")->required();
  a->add_option("--at", st->at, "The time: ms since 1970 or 2026-11-23T10:00:00Z")->required();
  a->add_option("--evidence-dir", st->evidence_dir,
                "Also save the statement and receipt of every entry the answer rests on here "
                "(check them offline with custos verify)");

  auto ls = std::make_shared<ListOptions>();
  CLI::App* l = add_command(device, "list", "List devices", ls, device_list);
  l->add_option("--holder", ls->holder, "Only those this organisation holds");
  l->add_option("--maker", ls->maker, "Only this maker's");
  l->add_option("--class", ls->device_class, "Only this class, e.g. infusion-pump");
  add_paging(l, ls->cursor, ls->limit, "Devices per page (1 to 1000)");
}

void add_firmware_commands(CLI::App& app) {
  CLI::App* fw =
      app.add_subcommand("firmware", "Firmware releases and device-attested installations");
  fw->require_subcommand(1);
  auto rel = std::make_shared<ReleaseOptions>();
  CLI::App* r =
      add_command(fw, "release", "Release a firmware version (signed by a maker's engineer)", rel,
                  firmware_release);
  r->add_option("--key", rel->key, "Signer's private key PEM (biomed or org-admin of a maker)")
      ->required();
  r->add_option("--version", rel->version, "Version, e.g. 2.0.0")->required();
  r->add_option("--image", rel->image, "Image file (hashed here)");
  r->add_option("--image-sha256", rel->image_sha256, "... or its SHA-256 in hex");
  r->add_option("--sbom", rel->sbom, "SBOM file (hashed here)");
  r->add_option("--sbom-sha256", rel->sbom_sha256, "... or its SHA-256 in hex");
  r->add_option("--models", rel->models, "Models it is approved for (comma separated)")
      ->delimiter(',')
      ->required();

  auto ins = std::make_shared<FirmwareInstallOptions>();
  CLI::App* i =
      add_command(fw, "install", "Attest a firmware installation, signed with the device's own key",
                  ins, firmware_install);
  i->add_option("--key", ins->key, "The device's private key PEM")->required();
  i->add_option("--version", ins->version, "Installed version")->required();
  i->add_option("--image", ins->image, "Installed image file (hashed here)");
  i->add_option("--image-sha256", ins->image_sha256, "... or its SHA-256 in hex");

  auto ls = std::make_shared<FirmwareReadOptions>();
  CLI::App* l = add_command(fw, "list", "A maker's firmware releases", ls, firmware_list);
  l->add_option("maker", ls->maker, "Maker (organisation id)")->required();
  add_paging(l, ls->cursor, ls->limit, "Releases per page (1 to 1000)");

  auto sh = std::make_shared<FirmwareReadOptions>();
  CLI::App* s =
      add_command(fw, "show", "One release: image, SBOM, models, advisories, devices running it",
                  sh, firmware_show);
  s->add_option("maker", sh->maker, "Maker (organisation id)")->required();
  s->add_option("version", sh->version, "Version")->required();
}

void add_advisory_commands(CLI::App& app) {
  CLI::App* adv =
      app.add_subcommand("advisory", "Security and safety advisories on device firmware");
  adv->require_subcommand(1);
  auto pub = std::make_shared<AdvisoryOptions>();
  CLI::App* p = add_command(adv, "publish",
                            "Publish an advisory (by a regulator, or a maker for its own devices)",
                            pub, advisory_publish);
  p->add_option("--key", pub->key,
                "Signer's private key PEM (org-admin, auditor or biomed of a regulator or maker)")
      ->required();
  p->add_option("--id", pub->id, "Advisory id, e.g. ADV-2026-01")->required();
  p->add_option("--maker", pub->maker, "Maker whose devices it concerns")->required();
  p->add_option("--versions", pub->versions, "Affected firmware versions (comma separated)")
      ->delimiter(',')
      ->required();
  p->add_option("--models", pub->models, "Affected models (comma separated; all if absent)")
      ->delimiter(',');
  p->add_option("--cves", pub->cves, "CVE ids (comma separated)")->delimiter(',');
  p->add_option("--severity", pub->severity, "low, medium, high or critical")->required();
  p->add_option("--fixed-in", pub->fixed_in, "Firmware version that fixes it");
  p->add_option("--summary", pub->summary, "A short summary");

  auto sh = std::make_shared<AdvisoryOptions>();
  CLI::App* s = add_command(adv, "show", "Show an advisory", sh, advisory_show);
  s->add_option("id", sh->id, "Advisory id")->required();

  auto ex = std::make_shared<AdvisoryOptions>();
  CLI::App* e = add_command(adv, "exposure", "Devices running affected firmware now, per holder",
                            ex, advisory_exposure);
  e->add_option("id", ex->id, "Advisory id")->required();
  add_paging(e, ex->cursor, ex->limit, "Devices per page (1 to 10000)");

  auto ls = std::make_shared<AdvisoryOptions>();
  ls->limit = 100;
  CLI::App* l = add_command(adv, "list", "List advisories", ls, advisory_list);
  l->add_option("--maker", ls->maker, "Only those concerning this maker");
  add_paging(l, ls->cursor, ls->limit, "Advisories per page (1 to 1000)");
}

void add_library_commands(CLI::App& app) {
  CLI::App* lib = app.add_subcommand("drug-library",
                                     "A hospital's drug library (dose error reduction) releases");
  lib->require_subcommand(1);
  auto rel = std::make_shared<LibraryOptions>();
  CLI::App* r =
      add_command(lib, "release", "Release a new drug library version (signed for a hospital)", rel,
                  library_release);
  r->add_option("--key", rel->key,
                "Signer's private key PEM (pharmacist, biomed or org-admin of a hospital)")
      ->required();
  r->add_option("--version", rel->version, "Library version, e.g. DL-7")->required();
  r->add_option("--file", rel->file, "Library file (hashed here)");
  r->add_option("--file-sha256", rel->sha256, "... or its SHA-256 in hex");
  r->add_option("--care-areas", rel->care_areas, "Care areas it covers (comma separated)")
      ->delimiter(',');

  auto sh = std::make_shared<LibraryOptions>();
  CLI::App* s = add_command(lib, "show", "A hospital's current library and recent releases", sh,
                            library_show);
  s->add_option("hospital", sh->hospital, "Hospital (organisation id)")->required();
}

}  // namespace

void add_device_commands(CLI::App& app) {
  CLI::App* device =
      app.add_subcommand("device", "Register, move, install and inspect medical devices");
  device->require_subcommand(1);
  add_device_statements(device);
  add_device_reads(device);
  add_firmware_commands(app);
  add_advisory_commands(app);
  add_library_commands(app);
}

}  // namespace custos::cli
