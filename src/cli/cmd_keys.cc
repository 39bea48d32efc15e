// `custos keygen` and `custos keys register|revoke|show`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "cli/signing.h"
#include "core/file.h"
#include "ledger/policy.h"

namespace custos::cli {

namespace {

struct KeygenOptions {
  std::string alg = "ed25519";
  std::string out;
  bool json = false;
};

Status keygen(const KeygenOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::Algorithm alg, crypto::algorithm_from_name(o.alg));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey key, crypto::PrivateKey::generate(alg));
  if (file_exists(o.out))
    return error(ErrorCode::kInvalidArgument, o.out + " exists; refusing to overwrite a key");
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(o.out, key.to_pem(), 0600));
  const std::string pub = public_key_path(o.out);
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(pub, key.public_key().to_pem()));
  const std::string kid = to_hex(key.public_key().kid());
  if (o.json) {
    std::printf("%s\n", nlohmann::json({{"kid", kid},
                                        {"alg", crypto::algorithm_name(alg)},
                                        {"private_key", o.out},
                                        {"public_key", pub}})
                            .dump(2)
                            .c_str());
  } else {
    std::printf("%s key written to %s (public key %s)\nkid %s\n", crypto::algorithm_name(alg),
                o.out.c_str(), pub.c_str(), kid.c_str());
  }
  return Status();
}

struct RegisterOptions {
  std::string node = kDefaultNodeUrl;
  std::string admin_key;
  std::string key;
  std::string name;
  std::string org;
  std::vector<std::string> roles{"issuer"};
  bool json = false;
};

Status register_key(const RegisterOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey pub_key, load_public_key(o.key));
  const crypto::PublicKey* pub = &pub_key;
  ledger::KeyRegistration reg;
  reg.org = o.org;
  reg.spki_der = pub->spki_der();
  CUSTOS_ASSIGN_OR_RETURN(reg.roles, ledger::roles_from_names(o.roles));
  reg.name = o.name.empty() ? o.key : o.name;
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(
      Bytes statement,
      sign_admin_statement(client, o.admin_key, std::string(ledger::kTypeKeyRegister),
                           to_hex(pub->kid()),
                           cbor::encode(ledger::key_registration_payload(reg))));
  return submit_and_print(client, statement, o.json, "registered key " + to_hex(pub->kid()));
}

struct RotateOptions {
  std::string node = kDefaultNodeUrl;
  std::string key;      // the key being replaced (signs)
  std::string new_key;  // its successor (public or private PEM)
  std::string reason = "scheduled rotation";
  bool json = false;
};

Status rotate_key(const RotateOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey next, load_public_key(o.new_key));
  ledger::KeyRotation rot{next.spki_der(), o.reason};
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(
      Bytes statement,
      sign_admin_statement(client, o.key, std::string(ledger::kTypeKeyRotate), to_hex(next.kid()),
                           cbor::encode(ledger::key_rotation_payload(rot))));
  return submit_and_print(client, statement, o.json, "rotated to key " + to_hex(next.kid()));
}

struct RevokeOptions {
  std::string node = kDefaultNodeUrl;
  std::string admin_key;
  std::string kid;
  std::string reason = "revoked by an administrator";
  bool json = false;
};

Status revoke_key(const RevokeOptions& o) {
  ledger::KeyRevocation rev;
  CUSTOS_ASSIGN_OR_RETURN(rev.kid, hash_from_hex(o.kid));
  rev.reason = o.reason;
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(
      Bytes statement,
      sign_admin_statement(client, o.admin_key, std::string(ledger::kTypeKeyRevoke), o.kid,
                           cbor::encode(ledger::key_revocation_payload(rev))));
  return submit_and_print(client, statement, o.json, "revoked key " + o.kid);
}

Status show_key(const std::string& node, const std::string& kid) {
  NodeClient client(node);
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get("/v1/keys/" + kid));
  if (!reply.ok()) return reply_error(reply);
  std::printf("%s\n", nlohmann::json::parse(reply.body, nullptr, false).dump(2).c_str());
  return Status();
}

}  // namespace

void add_key_commands(CLI::App& app) {
  auto kg = std::make_shared<KeygenOptions>();
  CLI::App* cmd =
      app.add_subcommand("keygen", "Create a signing key (PKCS#8 PEM) and its public key (.pub)");
  cmd->add_option("--alg", kg->alg, "ed25519 or es256")->capture_default_str();
  cmd->add_option("--out", kg->out, "Private key file to write")->required();
  cmd->add_flag("--json", kg->json, "Print JSON");
  cmd->callback([kg] {
    if (Status s = keygen(*kg); !s.ok()) exit_status() = fail(s);
  });

  CLI::App* keys = app.add_subcommand("keys", "Register, revoke and show issuer keys");
  keys->require_subcommand(1);
  auto reg = std::make_shared<RegisterOptions>();
  CLI::App* r =
      keys->add_subcommand("register", "Register a key (signed by an admin or org-admin key)");
  r->add_option("--node", reg->node, "Node URL")->capture_default_str();
  r->add_option("--admin-key", reg->admin_key, "Admin or org-admin private key PEM")->required();
  r->add_option("--key", reg->key, "Public (or private) key PEM of the key to register")
      ->required();
  r->add_option("--name", reg->name, "Name recorded with the key");
  r->add_option("--org", reg->org, "Organisation the key belongs to (must be registered)");
  r->add_option("--roles", reg->roles,
                "Roles: admin, issuer, opaque, org-admin, prescriber, pharmacist, nurse, biomed, "
                "gateway, auditor, device")
      ->delimiter(',')
      ->capture_default_str();
  r->add_flag("--json", reg->json, "Print JSON");
  r->callback([reg] {
    if (Status s = register_key(*reg); !s.ok()) exit_status() = fail(s);
  });

  auto rot = std::make_shared<RotateOptions>();
  CLI::App* ro = keys->add_subcommand(
      "rotate",
      "Replace a key by a new one (signed by the old key; name, org and roles carry over)");
  ro->add_option("--node", rot->node, "Node URL")->capture_default_str();
  ro->add_option("--key", rot->key, "Private key PEM of the key being replaced")->required();
  ro->add_option("--new-key", rot->new_key, "Public (or private) key PEM of its successor")
      ->required();
  ro->add_option("--reason", rot->reason, "Reason recorded on the ledger")->capture_default_str();
  ro->add_flag("--json", rot->json, "Print JSON");
  ro->callback([rot] {
    if (Status s = rotate_key(*rot); !s.ok()) exit_status() = fail(s);
  });

  auto rev = std::make_shared<RevokeOptions>();
  CLI::App* v = keys->add_subcommand("revoke", "Revoke a key (signed by an admin key)");
  v->add_option("--node", rev->node, "Node URL")->capture_default_str();
  v->add_option("--admin-key", rev->admin_key, "Admin or org-admin private key PEM")->required();
  v->add_option("--kid", rev->kid, "Key id (64 hex characters)")->required();
  v->add_option("--reason", rev->reason, "Reason recorded on the ledger")->capture_default_str();
  v->add_flag("--json", rev->json, "Print JSON");
  v->callback([rev] {
    if (Status s = revoke_key(*rev); !s.ok()) exit_status() = fail(s);
  });

  auto show = std::make_shared<std::pair<std::string, std::string>>(kDefaultNodeUrl, "");
  CLI::App* sh = keys->add_subcommand("show", "Show a key's state as the node knows it (JSON)");
  sh->add_option("--node", show->first, "Node URL")->capture_default_str();
  sh->add_option("kid", show->second, "Key id")->required();
  sh->callback([show] {
    if (Status s = show_key(show->first, show->second); !s.ok()) exit_status() = fail(s);
  });
}

}  // namespace custos::cli
