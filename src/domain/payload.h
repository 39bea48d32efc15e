// Field-by-field reading of domain statement payloads (deterministic CBOR
// maps with text keys). Every refusal names the statement kind, the field and
// the rule broken, e.g.
//   "device registration: field 'udi.di': GTIN check digit is 3, expected 7".
// Unknown fields are refused too (finish()), so a typo never silently drops
// data that a signer meant to record.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec/cbor.h"
#include "core/bytes.h"
#include "core/status.h"

namespace custos::domain {

inline constexpr size_t kIdBytesMax = 64;       // device, order, advisory, ... ids
inline constexpr size_t kNameBytesMax = 128;    // model names, drug names
inline constexpr size_t kNoteBytesMax = 512;    // free text (never about a patient)
inline constexpr size_t kListItemsMax = 64;     // models in a release, versions in an advisory
inline constexpr size_t kVersionBytesMax = 32;  // firmware / drug library versions

class PayloadReader {
 public:
  // The payload must be a CBOR map with text keys. `what` names the
  // statement kind in errors ("device registration").
  static Result<PayloadReader> open(ByteView payload, std::string what);
  // A nested map field ("udi"): errors then name "udi.<field>".
  Result<PayloadReader> map(std::string_view field);
  std::optional<PayloadReader> optional_map(std::string_view field);

  bool has(std::string_view field) const;

  // Text of 1..max_bytes bytes.
  Result<std::string> text(std::string_view field, size_t max_bytes);
  Result<std::optional<std::string>> optional_text(std::string_view field, size_t max_bytes);
  // An identifier: 1..kIdBytesMax of [A-Za-z0-9._:/-], starting with a letter or digit.
  Result<std::string> id(std::string_view field);
  Result<std::optional<std::string>> optional_id(std::string_view field);
  // One of `allowed`.
  Result<std::string> one_of(std::string_view field, const std::vector<std::string_view>& allowed);
  Result<std::optional<std::string>> optional_one_of(std::string_view field,
                                                     const std::vector<std::string_view>& allowed);
  // An integer or float within [min, max] (finite).
  Result<double> number(std::string_view field, double min, double max);
  Result<std::optional<double>> optional_number(std::string_view field, double min, double max);
  Result<uint64_t> uint(std::string_view field, uint64_t min, uint64_t max);
  // A bstr of exactly 32 bytes (a SHA-256 digest).
  Result<Hash256> digest(std::string_view field);
  Result<std::optional<Hash256>> optional_digest(std::string_view field);
  Result<Bytes> bytes(std::string_view field, size_t max_bytes);
  // An array of 1..max_items texts, each 1..max_bytes, no duplicates.
  Result<std::vector<std::string>> text_list(std::string_view field, size_t max_items,
                                             size_t max_bytes);
  // A calendar date "YYYY-MM-DD".
  Result<std::string> date(std::string_view field);
  Result<std::optional<std::string>> optional_date(std::string_view field);

  // kMalformed naming the first field that was not read.
  Status finish() const;
  // An error about `field` in this payload's words.
  Status fail(std::string_view field, const std::string& rule) const;

 private:
  PayloadReader(const cbor::Value* map, std::string what, std::string prefix,
                std::shared_ptr<cbor::Value> root);
  const cbor::Value* field(std::string_view name);

  const cbor::Value* map_ = nullptr;
  std::string what_;
  std::string prefix_;                 // "udi." for nested maps
  std::shared_ptr<cbor::Value> root_;  // keeps the decoded payload alive
  std::vector<std::string> read_;
};

// Identifier formats (true when valid; the message says why not).
Status check_gtin(std::string_view digits);  // GTIN-8/12/13/14 with its GS1 check digit
Status check_gln(std::string_view digits);   // 13 digits with its GS1 check digit
Status check_date(std::string_view text);    // YYYY-MM-DD, a real calendar date
Status check_id(std::string_view text);
// A patient pseudonym: "pseudonym:" followed by 16 to 64 lowercase hex
// digits (e.g. an HMAC of the hospital's record number under a hospital
// secret). Nothing else may name a patient on the ledger.
Status check_pseudonym(std::string_view text);
inline constexpr std::string_view kPseudonymPrefix = "pseudonym:";

// GS1 mod-10 check digit of the digits before it.
int gs1_check_digit(std::string_view digits_without_check);

// Clinical ranges shared by orders, pump programming and pump events, so a
// dose an order may carry is one a pump event may report.
inline constexpr size_t kCareAreaBytesMax = 64;
// The fastest infusion pumps deliver ~1,200 mL/h; large-volume bags hold a
// few litres.
inline constexpr double kRateMlPerHourMax = 2000;
inline constexpr double kVolumeMlMax = 10000;
inline constexpr double kDoseValueMax = 1e6;
// UCUM codes accepted for a dose or a dose rate.
const std::vector<std::string_view>& dose_units();
inline constexpr std::string_view kRateUnit = "mL/h";

// {"value": number above 0 and at most `max`, "unit": UCUM code of
// dose_units(), or mL/h with rate_only}: the same rule for an order's dose
// and a pump's.
struct Quantity {
  double value = 0;
  std::string unit;  // UCUM code: "mg", "mL/h", ...
};
Result<Quantity> read_quantity(PayloadReader& p, std::string_view field, double max,
                               bool rate_only);

}  // namespace custos::domain
