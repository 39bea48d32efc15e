// Organisations: registered by a consortium administrator, one statement each.
#include "domain/rules.h"
#include "ledger/policy.h"

namespace custos::domain {

namespace {

constexpr const char* kWhatOrg = "organisation registration";

// {"id": org id, "name": tstr, "kind": hospital|maker|pharmacy|distributor|regulator|hie,
//  ? "gln": 13-digit GS1 GLN}
Result<Org> parse_org(const cose::Statement& statement) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader p, PayloadReader::open(statement.payload(), kWhatOrg));
  Org o;
  CUSTOS_ASSIGN_OR_RETURN(o.id, p.text("id", ledger::kOrgIdBytesMax));
  if (Status s = ledger::check_org_id(o.id); !s.ok()) return p.fail("id", s.message());
  CUSTOS_ASSIGN_OR_RETURN(o.name, p.text("name", kNameBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(std::string kind, p.one_of("kind", org_kind_names()));
  o.kind = *org_kind_from_name(kind);
  CUSTOS_ASSIGN_OR_RETURN(auto gln, p.optional_text("gln", 13));
  if (gln) {
    if (Status s = check_gln(*gln); !s.ok()) return p.fail("gln", s.message());
    o.gln = *gln;
  }
  CUSTOS_RETURN_IF_ERROR(p.finish());
  return o;
}

Status apply_org(Apply& a) {
  CUSTOS_ASSIGN_OR_RETURN(Org o, parse_org(a.statement));
  CUSTOS_ASSIGN_OR_RETURN(std::optional<Org> existing, a.org(o.id));
  if (existing) {
    return a.refuse(ErrorCode::kConflict, std::string(kWhatOrg) + ": field 'id': organisation '" +
                                              o.id + "' is already registered");
  }
  o.registered_index = a.index();
  a.put(org_key(o.id), o.encode());
  a.add_ref("org", o.id);
  return Status();
}

constexpr TypeRule kOrgRules[] = {
    {kTypeOrgRegister, kWhatOrg, ledger::kRoleAdmin, 0, check_by_parsing<parse_org>, apply_org},
};

}  // namespace

std::span<const TypeRule> org_rules() {
  return kOrgRules;
}

}  // namespace custos::domain
