// `custos org register|list|show`: the organisations of the consortium.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/common.h"
#include "cli/signing.h"
#include "codec/cbor.h"
#include "core/bytes.h"
#include "domain/model.h"

namespace custos::cli {

namespace {

struct OrgOptions {
  std::string node = kDefaultNodeUrl;
  std::string admin_key;
  std::string id;
  std::string name;
  std::string kind;
  std::string gln;
  bool json = false;
};

Status register_org(const OrgOptions& o) {
  cbor::Map m;
  m.emplace_back(cbor::text("id"), cbor::text(o.id));
  m.emplace_back(cbor::text("name"), cbor::text(o.name));
  m.emplace_back(cbor::text("kind"), cbor::text(o.kind));
  if (!o.gln.empty()) m.emplace_back(cbor::text("gln"), cbor::text(o.gln));
  NodeClient client(o.node);
  CUSTOS_ASSIGN_OR_RETURN(
      Bytes statement,
      sign_admin_statement(client, o.admin_key, std::string(domain::kTypeOrgRegister),
                           "org/" + o.id, cbor::encode(cbor::Value::map(std::move(m)))));
  return submit_and_print(client, statement, o.json, "registered organisation " + o.id);
}

}  // namespace

void add_org_commands(CLI::App& app) {
  CLI::App* org = app.add_subcommand("org", "Register and show organisations");
  org->require_subcommand(1);

  auto reg = std::make_shared<OrgOptions>();
  CLI::App* r =
      org->add_subcommand("register", "Register an organisation (signed by an admin key)");
  r->add_option("--node", reg->node, "Node URL")->capture_default_str();
  r->add_option("--admin-key", reg->admin_key, "Consortium admin private key PEM")->required();
  r->add_option("--id", reg->id, "Organisation id: a-z 0-9 - .")->required();
  r->add_option("--name", reg->name, "Display name")->required();
  r->add_option("--kind", reg->kind, "hospital, maker, pharmacy, distributor, regulator or hie")
      ->required();
  r->add_option("--gln", reg->gln, "GS1 Global Location Number (13 digits)");
  r->add_flag("--json", reg->json, "Print JSON");
  r->callback([reg] {
    if (Status s = register_org(*reg); !s.ok()) exit_status() = fail(s);
  });

  auto node = std::make_shared<std::string>(kDefaultNodeUrl);
  CLI::App* l = org->add_subcommand("list", "List the registered organisations (JSON)");
  l->add_option("--node", *node, "Node URL")->capture_default_str();
  l->callback([node] {
    NodeClient client(*node);
    if (Status s = get_and_print_json(client, "/v1/orgs"); !s.ok()) exit_status() = fail(s);
  });

  auto show = std::make_shared<std::pair<std::string, std::string>>(kDefaultNodeUrl, "");
  CLI::App* sh = org->add_subcommand("show", "Show an organisation and its keys (JSON)");
  sh->add_option("--node", show->first, "Node URL")->capture_default_str();
  sh->add_option("id", show->second, "Organisation id")->required();
  sh->callback([show] {
    NodeClient client(show->first);
    if (Status s = get_and_print_json(client, "/v1/orgs/" + percent_encode(show->second)); !s.ok())
      exit_status() = fail(s);
  });
}

}  // namespace custos::cli
