#include "cli/signing.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/file.h"

namespace custos::cli {

std::string public_key_path(const std::string& private_key_path) {
  const std::string suffix = ".key";
  if (private_key_path.size() > suffix.size() &&
      private_key_path.compare(private_key_path.size() - suffix.size(), suffix.size(), suffix) ==
          0) {
    return private_key_path.substr(0, private_key_path.size() - suffix.size()) + ".pub";
  }
  return private_key_path + ".pub";
}

Result<crypto::PrivateKey> load_private_key(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes pem, read_file(path, 64 * 1024));
  auto key = crypto::PrivateKey::from_pem(as_string_view(pem));
  if (!key.ok()) return error(ErrorCode::kInvalidArgument, path + ": " + key.status().message());
  return key;
}

Result<crypto::PublicKey> load_public_key(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(Bytes pem, read_file(path, 64 * 1024));
  auto pub = crypto::PublicKey::from_pem(as_string_view(pem));
  if (pub.ok()) return pub;
  // Accept a private key file too and take its public half.
  auto priv = crypto::PrivateKey::from_pem(as_string_view(pem));
  if (!priv.ok())
    return error(ErrorCode::kInvalidArgument, path + ": not a PEM public or private key");
  return priv->public_key();
}

namespace {
Result<uint64_t> read_sequence_file(const std::string& path) {
  auto bytes = read_file(path, 64);
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kNotFound) return uint64_t{0};
    return bytes.status();
  }
  try {
    return static_cast<uint64_t>(std::stoull(std::string(bytes->begin(), bytes->end())));
  } catch (...) {
    return error(ErrorCode::kInvalidArgument, path + ": not a sequence number");
  }
}
}  // namespace

Result<uint64_t> take_sequence_from_file(const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(uint64_t last, read_sequence_file(path));
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(path, std::to_string(last + 1) + "\n"));
  return last + 1;
}

Status note_sequence_in_file(const std::string& path, uint64_t used) {
  CUSTOS_ASSIGN_OR_RETURN(uint64_t last, read_sequence_file(path));
  if (used <= last) return Status();
  return write_file_atomic(path, std::to_string(used) + "\n");
}

Result<KeyInfo> fetch_key_info(NodeClient& client, const Hash256& kid) {
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/keys/" + to_hex(kid)));
  if (!reply.ok()) return reply_error(reply);
  auto doc = nlohmann::json::parse(reply.body, nullptr, false);
  if (!doc.is_object() || !doc.contains("last_sequence")) {
    return error(ErrorCode::kMalformed, "unexpected answer from /v1/keys");
  }
  return KeyInfo{doc.value("name", ""), doc["last_sequence"].get<uint64_t>()};
}

Result<Bytes> sign_admin_statement(NodeClient& client, const std::string& admin_key_path,
                                   const std::string& content_type, const std::string& subject,
                                   const Bytes& payload) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey admin, load_private_key(admin_key_path));
  CUSTOS_ASSIGN_OR_RETURN(KeyInfo info, fetch_key_info(client, admin.public_key().kid()));
  cose::StatementHeader h;
  h.content_type = content_type;
  h.issuer = info.name;
  h.subject = subject;
  h.issued_at_s = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  h.sequence = info.last_sequence + 1;
  return cose::sign_statement(admin, h, payload);
}

Status submit_and_print(NodeClient& client, const Bytes& statement, bool json,
                        const std::string& message) {
  CUSTOS_ASSIGN_OR_RETURN(
      HttpReply reply, client.post("/v1/entries", std::string(statement.begin(), statement.end()),
                                   "application/cose"));
  if (!reply.ok()) return reply_error(reply);
  auto doc = nlohmann::json::parse(reply.body, nullptr, false);
  if (json) {
    std::printf("%s\n", doc.dump(2).c_str());
  } else {
    std::printf("%s: entry %s at log index %s\n", message.c_str(), doc.value("id", "?").c_str(),
                doc.contains("index") ? doc["index"].dump().c_str() : "?");
  }
  return Status();
}

}  // namespace custos::cli
