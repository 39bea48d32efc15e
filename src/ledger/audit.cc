#include "ledger/audit.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "codec/cbor.h"
#include "cose/receipt.h"
#include "cose/sign1.h"
#include "crypto/hash.h"
#include "ledger/block.h"
#include "ledger/genesis.h"
#include "ledger/key_registry.h"
#include "ledger/records.h"

namespace custos::ledger {

using storage::Column;

namespace {

// The rules' records as the replay builds them.
class ReplayRuleState : public RuleState {
 public:
  Result<std::optional<Bytes>> get(ByteView key) const override {
    const Bytes k(key.begin(), key.end());
    if (auto it = staged_.find(k); it != staged_.end()) return it->second;
    if (auto it = records_.find(k); it != records_.end()) return std::optional<Bytes>(it->second);
    return std::optional<Bytes>();
  }
  void put(ByteView key, ByteView value) override {
    staged_[Bytes(key.begin(), key.end())] = Bytes(value.begin(), value.end());
  }
  void remove(ByteView key) override { staged_[Bytes(key.begin(), key.end())] = std::nullopt; }
  void commit() {
    for (auto& [k, v] : staged_) {
      if (v)
        records_[k] = std::move(*v);
      else
        records_.erase(k);
    }
    staged_.clear();
  }
  void drop() { staged_.clear(); }
  const std::map<Bytes, Bytes>& records() const { return records_; }

 private:
  std::map<Bytes, Bytes> records_;
  std::map<Bytes, std::optional<Bytes>> staged_;
};

class Auditor {
 public:
  Auditor(storage::Store& store, AuditReport* report, const Rules* rules)
      : store_(store), report_(report), rules_(rules) {}

  Status run(const std::function<void(const AuditReport&)>& progress) {
    CUSTOS_ASSIGN_OR_RETURN(Bytes genesis_bytes,
                            store_.get(Column::kMeta, as_view(records::kMetaGenesis)));
    CUSTOS_ASSIGN_OR_RETURN(genesis_, parse_genesis(genesis_bytes));
    for (const auto& admin : genesis_.admins) keys_.add_genesis_admin(admin);
    CUSTOS_ASSIGN_OR_RETURN(Bytes head, store_.get(Column::kMeta, as_view(records::kMetaHead)));
    if (head.size() != 8) return error(ErrorCode::kCorruption, "head record has the wrong size");
    const uint64_t head_height = read_be64(head.data());

    for (uint64_t h = 0; h <= head_height; ++h) {
      CUSTOS_RETURN_IF_ERROR(check_block(h));
      if (progress && h % 1000 == 0) progress(*report_);
    }
    CUSTOS_RETURN_IF_ERROR(check_no_entries_after(frontier_.size(), head_height));
    if (rules_) CUSTOS_RETURN_IF_ERROR(check_rule_records());
    report_->keys = keys_.size();
    report_->root_hex = to_hex(frontier_.root());
    return Status();
  }

 private:
  Status fail(uint64_t height, const std::string& what) {
    return error(ErrorCode::kCorruption, "block " + std::to_string(height) + ": " + what);
  }

  Status check_block(uint64_t height) {
    auto bytes = store_.get(Column::kBlocks, records::be64_key(height));
    if (!bytes.ok()) return fail(height, "missing (" + bytes.status().message() + ")");
    CUSTOS_ASSIGN_OR_RETURN(BlockRecord b, BlockRecord::decode(*bytes));
    const BlockHeader& hd = b.header;
    if (hd.height != height) return fail(height, "header says height " + std::to_string(hd.height));
    if (hd.prev_hash != prev_hash_) return fail(height, "previous-header hash breaks the chain");
    if (hd.time_ms < prev_time_ms_) return fail(height, "block time goes back");
    if (height == 0 &&
        (!hd.genesis_hash || *hd.genesis_hash != genesis_.hash || hd.log_size != 0)) {
      return fail(height, "block 0 does not commit to this genesis file");
    }
    // Block 0 has no proposer (every node writes the same one); later blocks
    // name the consensus leader that proposed them.
    if (height > 0 && !genesis_.find_node(hd.proposer))
      return fail(height, "proposer " + to_hex(hd.proposer) + " is not a genesis node");
    const NamedKey* signer = genesis_.find_node(b.signer);
    if (!signer) return fail(height, "signer " + to_hex(b.signer) + " is not a genesis node");
    Status sigs = verify_block_signatures(b, signer->key);
    if (!sigs.ok()) return sigs;
    report_->signatures_verified += 2;
    CUSTOS_RETURN_IF_ERROR(check_receipt_signatures(b));
    if (hd.log_size != frontier_.size() + hd.entry_count)
      return fail(height, "log size does not add up");
    block_time_ms_ = hd.time_ms;
    for (uint64_t i = frontier_.size(); i < hd.log_size; ++i)
      CUSTOS_RETURN_IF_ERROR(check_entry(height, i));
    if (frontier_.root() != hd.root) return fail(height, "Merkle root does not match the entries");
    prev_hash_ = b.header_hash();
    prev_time_ms_ = hd.time_ms;
    ++report_->blocks;
    return Status();
  }

  // Every consortium signature kept for the block's receipts must be what a
  // verifier accepts: a genesis node's key, this block's tree size, a valid
  // signature over this block's root.
  Status check_receipt_signatures(const BlockRecord& b) {
    const uint64_t height = b.header.height;
    Status bad;
    Bytes start = records::be64_key(height);
    Bytes end = records::be64_key(height + 1);
    CUSTOS_RETURN_IF_ERROR(
        store_.scan(Column::kReceiptSigs, start, end, [&](ByteView key, ByteView value) {
          bad = check_receipt_signature(b, key, value);
          if (bad.ok()) ++report_->receipt_signatures;
          return bad.ok();
        }));
    return bad;
  }

  Status check_receipt_signature(const BlockRecord& b, ByteView key, ByteView value) {
    const uint64_t height = b.header.height;
    if (key.size() != 12) return fail(height, "receipt signature key has the wrong size");
    const uint32_t node = read_be32(key.data() + 8);
    if (node >= genesis_.nodes.size()) return fail(height, "receipt signature of an unknown node");
    auto v = cbor::decode(value);
    if (!v.ok() || !v->is(cbor::Type::kArray) || v->as_array().size() != 2 ||
        !v->as_array()[0].is(cbor::Type::kBytes) || !v->as_array()[1].is(cbor::Type::kBytes)) {
      return fail(height, "unreadable receipt signature record");
    }
    const Bytes& protected_bytes = v->as_array()[0].as_bytes();
    const Bytes& signature = v->as_array()[1].as_bytes();
    cose::InclusionProof shape{b.header.log_size, 0, {}};
    auto parsed = cose::parse_receipt(cose::encode_receipt(protected_bytes, shape, signature));
    const crypto::PublicKey& node_key = genesis_.nodes[node].key;
    if (!parsed.ok() || parsed->header.kid != node_key.kid() ||
        parsed->header.tree_size != b.header.log_size ||
        !node_key.verify(cose::sig_structure(protected_bytes, {}, b.header.root), signature).ok()) {
      return fail(height, "receipt signature of " + genesis_.nodes[node].name +
                              " does not verify over this block");
    }
    ++report_->signatures_verified;
    return Status();
  }

  Status check_entry(uint64_t height, uint64_t index) {
    const std::string where = "entry " + std::to_string(index);
    auto bytes = store_.get(Column::kEntries, records::be64_key(index));
    if (!bytes.ok()) return fail(height, where + " missing");
    auto st = cose::parse_statement(*bytes);
    if (!st.ok()) return fail(height, where + ": " + st.status().message());
    const KeyState* signer = keys_.find(st->header.kid);
    if (!signer) return fail(height, where + ": signed by an unregistered key");
    if (!cose::verify_statement(*st, signer->key).ok())
      return fail(height, where + ": signature does not verify");
    ++report_->signatures_verified;
    const bool by_rules = rules_ && rules_->defines(st->header.content_type);
    Status content = check_content(*st, *signer, by_rules);
    if (content.ok() && by_rules) content = rules_->check(*st, *signer);
    if (!content.ok())
      return fail(height, where + ": refused by the content policy: " + content.message());
    RuleOutcome decided;
    if (rules_) {
      auto signer_now = keys_.check_signer(st->header);
      if (!signer_now.ok())
        return fail(height, where + ": registration policy: " + signer_now.status().message());
      RuleContext ctx{index, block_time_ms_, *signer_now, &keys_};
      auto applied = rules_->apply(*st, ctx, rule_state_);
      if (!applied.ok()) {
        rule_state_.drop();
        return fail(height, where + ": refused by the rules: " + applied.status().message());
      }
      decided = std::move(applied).value();
    }
    auto outcome = keys_.apply(*st, index, decided.register_keys, decided.revoke_keys);
    if (!outcome.ok())
      return fail(height, where + ": registration policy: " + outcome.status().message());
    rule_state_.commit();
    keys_.take_changed();
    if (outcome->gap()) ++report_->sequence_gaps;

    const Hash256 id = crypto::sha256(*bytes);
    auto loc = store_.get(Column::kEntryIds, id);
    auto decoded = loc.ok() ? records::EntryLocation::decode(*loc)
                            : Result<records::EntryLocation>(loc.status());
    if (!decoded.ok() || decoded->index != index || decoded->height != height) {
      return fail(height, where + ": id map does not point back to it");
    }
    if (rules_) CUSTOS_RETURN_IF_ERROR(check_annotations(height, index, id, decided));
    const merkle::Hash leaf = merkle::leaf_hash(*bytes);
    // Every inner node this entry completes must be stored as computed too:
    // receipts and consistency proofs are served from them, so a wrong or
    // missing one would go unnoticed by the root check above.
    std::string node_problem;
    frontier_.append(leaf, [&](const merkle::Frontier::NewNode& n) {
      if (n.level == 0 || !node_problem.empty()) return;  // leaves are not stored
      auto stored = records::StoreNodeReader(store_).perfect_subtree(n.level, n.index);
      if (!stored.ok() || *stored != n.hash) {
        node_problem = "stored log node (" + std::to_string(n.level) + ", " +
                       std::to_string(n.index) + ") " + (stored.ok() ? "differs" : "is missing");
      }
    });
    if (!node_problem.empty()) return fail(height, where + ": " + node_problem);
    ++report_->entries;
    return Status();
  }

  // The refs and flags stored with an entry (in its id map record) are the
  // ones the rules decide, and each is in its index.
  Status check_annotations(uint64_t height, uint64_t index, const Hash256& id,
                           const RuleOutcome& decided) {
    auto loc_bytes = store_.get(Column::kEntryIds, id);
    auto loc = loc_bytes.ok() ? records::EntryLocation::decode(*loc_bytes)
                              : Result<records::EntryLocation>(loc_bytes.status());
    if (!loc.ok()) return fail(height, "entry " + std::to_string(index) + ": id map unreadable");
    const bool expected = !decided.refs.empty() || !decided.flags.empty();
    if (loc->annotations.empty()) {
      if (!expected) return Status();
      return fail(height, "entry " + std::to_string(index) + ": its refs and flags are missing");
    }
    std::vector<std::string> refs, flags;
    auto v = cbor::decode(loc->annotations);
    if (v.ok() && v->is(cbor::Type::kMap)) {
      for (auto [field, out] : {std::pair{"refs", &refs}, std::pair{"flags", &flags}}) {
        const cbor::Value* a = v->find(field);
        if (!a || !a->is(cbor::Type::kArray)) continue;
        for (const auto& t : a->as_array()) {
          if (t.is(cbor::Type::kText)) out->push_back(t.as_text());
        }
      }
    }
    if (!expected || refs != decided.refs || flags != decided.flags)
      return fail(height, "entry " + std::to_string(index) +
                              ": stored refs or flags differ from the rules'");
    for (const auto& r : refs) {
      if (!store_.get(Column::kIndex, records::index_key(records::kIndexRef, r, index)).ok())
        return fail(height,
                    "entry " + std::to_string(index) + ": ref index of '" + r + "' missing");
    }
    if (!flags.empty()) ++report_->flagged_entries;
    return Status();
  }

  // After the replay, the stored rule records must be exactly the replayed ones.
  Status check_rule_records() {
    const auto& expected = rule_state_.records();
    auto it = expected.begin();
    std::string problem;
    CUSTOS_RETURN_IF_ERROR(store_.scan(Column::kDomain, {}, {}, [&](ByteView key, ByteView value) {
      if (it == expected.end() ||
          !std::equal(key.begin(), key.end(), it->first.begin(), it->first.end())) {
        problem = "rule record " + to_hex(key) + " is stored but the replay does not produce it";
        return false;
      }
      if (!std::equal(value.begin(), value.end(), it->second.begin(), it->second.end())) {
        problem = "rule record " + to_hex(key) + " differs from the replay";
        return false;
      }
      ++it;
      ++report_->rule_records;
      return true;
    }));
    if (problem.empty() && it != expected.end())
      problem = "rule record " + to_hex(it->first) + " is missing from the store";
    if (!problem.empty()) return error(ErrorCode::kCorruption, problem);
    return Status();
  }

  Status check_no_entries_after(uint64_t size, uint64_t head_height) {
    std::optional<uint64_t> extra;
    CUSTOS_RETURN_IF_ERROR(
        store_.scan(Column::kEntries, records::be64_key(size), {}, [&](ByteView key, ByteView) {
          extra = key.size() == 8 ? read_be64(key.data()) : size;
          return false;
        }));
    if (extra) {
      // Named like every other finding, so an operator can look at it.
      return error(ErrorCode::kCorruption,
                   "entry " + std::to_string(*extra) + " is stored beyond the newest block " +
                       std::to_string(head_height) + " (log size " + std::to_string(size) + ")");
    }
    return Status();
  }

  storage::Store& store_;
  AuditReport* report_;
  Genesis genesis_;
  const Rules* rules_;
  KeyRegistry keys_;
  ReplayRuleState rule_state_;
  uint64_t block_time_ms_ = 0;
  merkle::Frontier frontier_;
  Hash256 prev_hash_{};
  uint64_t prev_time_ms_ = 0;
};

}  // namespace

Status audit(const std::string& data_dir, AuditReport* report,
             const std::function<void(const AuditReport&)>& progress, const Rules* rules) {
  const auto start = std::chrono::steady_clock::now();
  storage::Options options;
  options.read_only = true;
  options.create_if_missing = false;
  CUSTOS_ASSIGN_OR_RETURN(auto store, storage::Store::open(data_dir + "/db", options));
  *report = AuditReport{};
  Status s = Auditor(*store, report, rules).run(progress);
  report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace custos::ledger
