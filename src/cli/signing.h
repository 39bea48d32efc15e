// Client-side helpers for building, signing and submitting statements.
#pragma once

#include <string>

#include "cli/common.h"
#include "cose/statement.h"

namespace custos::cli {

// "x.key" -> "x.pub"; anything else -> path + ".pub".
std::string public_key_path(const std::string& private_key_path);
Result<crypto::PrivateKey> load_private_key(const std::string& path);
// A PEM public key, or the public half of a PEM private key.
Result<crypto::PublicKey> load_public_key(const std::string& path);

// Sequence numbers kept in a small file beside the key, so a client signing
// from the command line never reuses one (a reuse is refused as a replay).
// Returns the next number and records it before returning (fsynced).
Result<uint64_t> take_sequence_from_file(const std::string& path);
// Records that `used` was signed with explicitly, so that later numbers taken
// from the file stay above it.
Status note_sequence_in_file(const std::string& path, uint64_t used);

struct KeyInfo {
  std::string name;
  uint64_t last_sequence = 0;
};
// Asks the node what it knows of a key.
Result<KeyInfo> fetch_key_info(NodeClient& client, const Hash256& kid);

// Signs a statement with an admin key: iss = the admin key's registered
// name, sequence = the node's last accepted + 1.
Result<Bytes> sign_admin_statement(NodeClient& client, const std::string& admin_key_path,
                                   const std::string& content_type, const std::string& subject,
                                   const Bytes& payload);

// POSTs one statement and prints the node's answer (or `message` + id).
Status submit_and_print(NodeClient& client, const Bytes& statement, bool json,
                        const std::string& message);

}  // namespace custos::cli
