// The hook through which rules beyond the ledger core (the health domain,
// src/domain) join the registration policy, without the ledger knowing them.
//
// Like the core policy, rules run in two stages:
//  1. check(): on admission, on any thread, from the statement and its
//     signer's record alone: payload fields, identifier formats, units and
//     ranges, the roles allowed to sign the content type.
//  2. apply(): at execution, in log order, on every node identically: what
//     depends on the log before the statement (references to things that
//     exist, organisation kinds, state transitions). It reads and writes the
//     rules' own records through RuleState and reports what the entry
//     concerns (refs, for queries), what is noteworthy about it (flags) and
//     key effects (a device's key registered with the device).
// apply() must be deterministic: same statement, same state, same context ->
// same outcome and writes. It never consults a clock; time is the block's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cose/statement.h"
#include "ledger/key_registry.h"

namespace custos::ledger {

// The rules' records (Column::kDomain). Reads see the writes of statements
// accepted earlier in the same block; the writes of a refused statement are
// dropped. Everything is written in the block's one atomic batch.
class RuleState {
 public:
  virtual ~RuleState() = default;
  // nullopt when absent; an error only when storage fails.
  virtual Result<std::optional<Bytes>> get(ByteView key) const = 0;
  virtual void put(ByteView key, ByteView value) = 0;
  virtual void remove(ByteView key) = 0;
};

struct RuleContext {
  uint64_t index = 0;          // log index the statement takes if accepted
  uint64_t block_time_ms = 0;  // the block's time: the consortium's clock, not the signer's
  const KeyState* signer = nullptr;
  const KeyRegistry* keys = nullptr;
};

// Limits on what one statement's outcome may add.
inline constexpr size_t kRefsPerEntryMax = 16;
inline constexpr size_t kFlagsPerEntryMax = 16;
inline constexpr size_t kRefBytesMax = 200;
inline constexpr size_t kFlagBytesMax = 300;

struct RuleOutcome {
  // What the entry concerns, e.g. "device:pump-17", "order:o-1"; each one
  // is indexed (GET /v1/entries?ref=). Text, at most kRefBytesMax.
  std::vector<std::string> refs;
  // Accepted but noteworthy: "<code>: <detail>", e.g.
  // "firmware-under-advisory: ADV-7 (high)". Kept with the entry and indexed
  // by code (the text before ':').
  std::vector<std::string> flags;
  // Keys to register with this statement (a device's own key). Validated by
  // the key registry before anything changes.
  std::vector<KeyState> register_keys;
  // Keys to revoke with this statement (a decommissioned device).
  std::vector<Hash256> revoke_keys;
};

class Rules {
 public:
  virtual ~Rules() = default;
  // True for the content types these rules define (stage 1 then refuses
  // nothing for being unknown; check() decides).
  virtual bool defines(std::string_view content_type) const = 0;
  // Stage 1, for statements of a defined content type. kMalformed (naming the
  // field and rule) or kPolicy (role).
  virtual Status check(const cose::Statement& statement, const KeyState& signer) const = 0;
  // Stage 2, for every statement the core policy accepts (the rules may also
  // constrain core types, e.g. a key's organisation must exist). A refusal
  // leaves no trace.
  virtual Result<RuleOutcome> apply(const cose::Statement& statement, const RuleContext& context,
                                    RuleState& state) const = 0;
};

}  // namespace custos::ledger
