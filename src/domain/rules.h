// The health domain's registration rules (ledger::Rules): for every domain
// content type, who may sign it (roles, and the kind of the signer's
// organisation), what its payload must hold (stage 1, field by field), and
// what it must find and changes in the domain state (stage 2, in log order).
// Statement families live in their own files (orgs.cc, devices.cc,
// infusion.cc, records.cc), each contributing a table of TypeRules.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "cose/statement.h"
#include "domain/model.h"
#include "domain/payload.h"
#include "ledger/rules.h"

namespace custos::domain {

// The stage-2 view one statement's rule works with: typed reads and writes
// of domain records and the outcome it builds.
class Apply {
 public:
  Apply(const cose::Statement& statement, const ledger::RuleContext& context,
        ledger::RuleState& state)
      : statement(statement), context(context), state(state) {}

  const cose::Statement& statement;
  const ledger::RuleContext& context;
  ledger::RuleState& state;
  ledger::RuleOutcome outcome;
  // The signer's organisation (loaded before the rule runs), if it has one.
  std::optional<Org> signer_org;

  const ledger::KeyState& signer() const { return *context.signer; }
  uint64_t index() const { return context.index; }
  uint64_t time_ms() const { return context.block_time_ms; }

  Result<std::optional<Org>> org(std::string_view id) const;
  Result<std::optional<Device>> device(std::string_view id) const;
  // The device whose own key is `kid`.
  Result<std::optional<Device>> device_by_kid(const Hash256& kid) const;
  Result<std::optional<FirmwareRelease>> firmware(std::string_view maker,
                                                  std::string_view version) const;
  Result<std::optional<Advisory>> advisory(std::string_view id) const;
  // Advisories naming (maker, version) that cover `model`.
  Result<std::vector<Advisory>> advisories_for(std::string_view maker, std::string_view model,
                                               std::string_view version) const;
  Result<std::optional<DrugLibrary>> drug_library(std::string_view hospital) const;
  Result<std::optional<MedicationOrder>> order(std::string_view id) const;

  void put(const Bytes& key, const Bytes& value) { state.put(key, value); }
  void remove(const Bytes& key) { state.remove(key); }
  void add_ref(std::string_view kind, std::string_view id);
  void flag(std::string_view code, const std::string& detail);

  // A refusal of a stage-2 rule: kPolicy (not allowed now), kNotFound (a
  // reference to something that does not exist) or kConflict (state).
  Status refuse(ErrorCode code, const std::string& why) const;

 private:
  template <typename T>
  Result<std::optional<T>> load(const Bytes& key) const;
};

struct TypeRule {
  std::string_view content_type;
  const char* what;    // "device registration": names the statement in errors
  uint32_t roles;      // the signer must hold one of these (ledger::Role bits)
  uint32_t org_kinds;  // ... and belong to an organisation of one of these kinds (0: any)
  // Stage 1: payload fields (identifier formats, units, ranges). The signer's
  // roles were checked already.
  Status (*check)(const cose::Statement& statement, const ledger::KeyState& signer);
  // Stage 2: references, state transitions, refs and flags. The signer's
  // organisation kind was checked already.
  Status (*apply)(Apply& a);
};

// The stage-1 check of a statement whose payload rules all live in its
// parse function (one parser serves both stages): the payload parses. As a
// TypeRule's check: check_by_parsing<parse_install>.
template <auto parse>
Status check_by_parsing(const cose::Statement& statement, const ledger::KeyState&) {
  return parse(statement).status();
}

std::span<const TypeRule> org_rules();
std::span<const TypeRule> device_rules();
std::span<const TypeRule> infusion_rules();
std::span<const TypeRule> record_rules();

class DomainRules : public ledger::Rules {
 public:
  DomainRules();
  bool defines(std::string_view content_type) const override;
  Status check(const cose::Statement& statement, const ledger::KeyState& signer) const override;
  Result<ledger::RuleOutcome> apply(const cose::Statement& statement,
                                    const ledger::RuleContext& context,
                                    ledger::RuleState& state) const override;
  // The rule for a content type, or nullptr.
  const TypeRule* find(std::string_view content_type) const;
  const std::vector<const TypeRule*>& all() const { return rules_; }

 private:
  Status apply_core(const cose::Statement& statement, Apply& a) const;
  std::vector<const TypeRule*> rules_;
};

std::shared_ptr<const ledger::Rules> make_rules();

}  // namespace custos::domain
